import { isIP } from 'node:net';

/**
 * One event schema for everything that arrives: ECS-style dotted names for the fields every
 * search and rule needs, and the original fields kept as they came (flattened to dotted keys)
 * so Sigma rules written against source names (`EventID`, `Image`, `CommandLine`) still match.
 */
export interface NormalizedEvent {
  ts: Date;
  source: string;
  category: string | null;
  action: string | null;
  outcome: string | null;
  severity: number | null;
  hostName: string | null;
  sourceIp: string | null;
  destinationIp: string | null;
  userName: string | null;
  message: string | null;
  /** The whole event: flat dotted keys, normalised fields and original fields. */
  doc: Record<string, unknown>;
}

export type Flat = Record<string, unknown>;

export class RejectedEvent extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

const MAX_DEPTH = 16;
const MAX_FIELDS = 2000;
/** A single event's JSON size limit; bigger ones are rejected, not truncated. */
export const MAX_EVENT_BYTES = 1024 * 1024;

interface FlattenState {
  out: Flat;
  count: number;
}

// A plain recursive function over `for…in`, writing into one object: no closure, entry arrays
// or object spread per event (spreading these dotted-key objects cost ~100 µs an event).
function flattenInto(state: FlattenState, value: unknown, prefix: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new RejectedEvent('too_deep', `the event nests deeper than ${MAX_DEPTH} levels`);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    for (const key in object) {
      if (!Object.hasOwn(object, key)) continue;
      flattenInto(state, object[key], prefix ? `${prefix}.${key}` : key, depth + 1);
    }
    return;
  }
  if (++state.count > MAX_FIELDS) throw new RejectedEvent('too_many_fields', `the event has more than ${MAX_FIELDS} fields`);
  if (typeof value === 'string' && value.includes('\0')) value = value.replaceAll('\0', '');
  setField(state.out, prefix, Array.isArray(value) ? value.map((v: unknown) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : v)) : value);
}

/** `out[key] = value`, except that a field named `__proto__` stays a field instead of replacing the prototype. */
function setField(out: Flat, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

/** Flattens nested objects to dotted keys (`{a:{b:1}}` → `{"a.b":1}`); arrays of scalars stay arrays. */
export function flatten(input: Record<string, unknown>, into: Flat = {}): Flat {
  flattenInto({ out: into, count: 0 }, input, '', 0);
  return into;
}

function first(doc: Flat, names: string[]): unknown {
  for (const name of names) {
    const v = doc[name];
    if (v !== undefined && v !== null && v !== '') return v;
  }
  return undefined;
}

function str(v: unknown, max = 1024): string | null {
  if (v === undefined || v === null || v === '') return null;
  const s = Array.isArray(v) ? String(v[0] ?? '') : String(v);
  return s.length > max ? s.slice(0, max) : s;
}

function ip(v: unknown): string | null {
  const s = str(v, 64);
  if (!s) return null;
  const candidate = s.startsWith('::ffff:') && isIP(s.slice(7)) === 4 ? s.slice(7) : s;
  return isIP(candidate) ? candidate : null;
}

const ZONELESS = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d+)?$/;

/**
 * Parses event times: ISO 8601 with a zone, epoch seconds or milliseconds, and the zone-less
 * "YYYY-MM-DD HH:MM:SS.fff" of Windows exports (read as UTC, and the event says so).
 */
export function parseTimestamp(value: unknown): { time: Date; assumedUtc: boolean } | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value === 'number' || (typeof value === 'string' && /^\d{9,13}(\.\d+)?$/.test(value))) {
    const n = Number(value);
    const ms = n > 1e11 ? n : n * 1000;
    return Number.isFinite(ms) ? { time: new Date(ms), assumedUtc: false } : null;
  }
  if (typeof value !== 'string') return null;
  const zoneless = ZONELESS.exec(value.trim());
  if (zoneless) {
    const [, y, mo, d, h, mi, s, frac] = zoneless;
    const ms = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!, frac ? Math.round(Number(frac) * 1000) : 0);
    return Number.isNaN(ms) ? null : { time: new Date(ms), assumedUtc: true };
  }
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : { time: new Date(ms), assumedUtc: false };
}

const TIME_FIELDS = ['@timestamp', 'timestamp', 'time', 'EventTime', 'TimeCreated', 'Event.System.TimeCreated.SystemTime', 'Event.System.TimeCreated.#attributes.SystemTime', 'winlog.time_created', 'date'];
const HOST_FIELDS = ['host.name', 'host.hostname', 'hostname', 'Hostname', 'Computer', 'winlog.computer_name', 'Event.System.Computer', 'host'];
const SOURCE_IP_FIELDS = ['source.ip', 'src_ip', 'client.ip', 'IpAddress', 'SourceIp', 'SourceAddress', 'Event.EventData.IpAddress', 'winlog.event_data.IpAddress'];
const DEST_IP_FIELDS = ['destination.ip', 'dst_ip', 'server.ip', 'DestinationIp', 'DestAddress', 'Event.EventData.DestinationIp'];
const USER_FIELDS = ['user.name', 'username', 'user', 'TargetUserName', 'SubjectUserName', 'User', 'winlog.event_data.TargetUserName', 'winlog.event_data.SubjectUserName', 'Event.EventData.TargetUserName', 'Event.EventData.SubjectUserName'];
const MESSAGE_FIELDS = ['message', 'msg', 'Message', 'log', 'line', 'event.original'];
const EVENT_ID_FIELDS = ['EventID', 'winlog.event_id', 'Event.System.EventID', 'Event.System.EventID.#text', 'event.code'];
const CHANNEL_FIELDS = ['Channel', 'winlog.channel', 'Event.System.Channel'];

// A few Windows event ids whose meaning every analyst searches for.
const WINDOWS_ACTIONS: Record<string, { category: string; action: string; outcome?: string }> = {
  '4624': { category: 'authentication', action: 'logon', outcome: 'success' },
  '4625': { category: 'authentication', action: 'logon-failed', outcome: 'failure' },
  '4634': { category: 'authentication', action: 'logoff' },
  '4648': { category: 'authentication', action: 'explicit-credentials-logon' },
  '4672': { category: 'iam', action: 'special-privileges-assigned' },
  '4688': { category: 'process', action: 'process-created' },
  '4720': { category: 'iam', action: 'user-account-created', outcome: 'success' },
  '4732': { category: 'iam', action: 'added-member-to-group', outcome: 'success' },
  '4740': { category: 'iam', action: 'user-account-locked-out' },
  '5156': { category: 'network', action: 'connection-allowed', outcome: 'success' },
  '7045': { category: 'configuration', action: 'service-installed' },
  '1102': { category: 'configuration', action: 'audit-log-cleared' },
};
const SYSMON_ACTIONS: Record<string, { category: string; action: string }> = {
  '1': { category: 'process', action: 'process-created' },
  '3': { category: 'network', action: 'network-connection' },
  '7': { category: 'library', action: 'image-loaded' },
  '8': { category: 'process', action: 'create-remote-thread' },
  '10': { category: 'process', action: 'process-access' },
  '11': { category: 'file', action: 'file-created' },
  '12': { category: 'registry', action: 'registry-object-added-or-deleted' },
  '13': { category: 'registry', action: 'registry-value-set' },
  '22': { category: 'network', action: 'dns-query' },
};

const SEVERITY_WORDS: Record<string, number> = { emergency: 0, emerg: 0, alert: 1, critical: 2, crit: 2, error: 3, err: 3, warning: 4, warn: 4, notice: 5, informational: 6, info: 6, information: 6, debug: 7 };

function severity(doc: Flat): number | null {
  const v = first(doc, ['event.severity', 'severity', 'log.syslog.severity.code', 'syslog.severity', 'level', 'Level', 'log.level']);
  if (v === undefined) return null;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  const s = String(v).toLowerCase();
  if (/^\d+$/.test(s)) return Number(s);
  return SEVERITY_WORDS[s] ?? null;
}

/**
 * Normalises one parsed event. `extra` are fields the source adds (stream labels, sender
 * address, index name); they are kept but never override the event's own fields.
 */
export function normalize(raw: Record<string, unknown>, source: string, receivedAt: Date, extra: Flat = {}): NormalizedEvent {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new RejectedEvent('not_an_object', 'an event must be a JSON object');
  // The source's extra fields first, so the event's own fields win.
  const doc: Flat = {};
  for (const key in extra) if (Object.hasOwn(extra, key)) setField(doc, key, extra[key]);
  flatten(raw, doc);

  const parsed = parseTimestamp(first(doc, TIME_FIELDS));
  let ts = parsed?.time ?? receivedAt;
  const skew = ts.getTime() - receivedAt.getTime();
  // Times far in the future or before 1970 are clock or parse errors: keep them, but file the
  // event under its receive time so it stays findable and partitions stay sane.
  if (ts.getTime() < 0 || skew > 86_400_000) {
    doc['event.original_timestamp'] = ts.toISOString();
    ts = receivedAt;
    doc['event.timestamp_source'] = 'received';
  } else if (!parsed) {
    doc['event.timestamp_source'] = 'received';
  } else if (parsed.assumedUtc) {
    doc['event.timestamp_source'] = 'event, no time zone given: read as UTC';
  }
  doc['@timestamp'] = ts.toISOString();
  doc['event.ingested'] = receivedAt.toISOString();

  const eventId = str(first(doc, EVENT_ID_FIELDS), 16);
  const channel = str(first(doc, CHANNEL_FIELDS), 256);
  let category = str(doc['event.category']);
  let action = str(doc['event.action']);
  let outcome = str(doc['event.outcome']);
  if (eventId && channel) {
    const known = /sysmon/i.test(channel) ? SYSMON_ACTIONS[eventId] : WINDOWS_ACTIONS[eventId];
    category ??= known?.category ?? null;
    action ??= known?.action ?? null;
    outcome ??= (known as { outcome?: string } | undefined)?.outcome ?? null;
    doc['event.code'] ??= eventId;
    doc['winlog.channel'] ??= channel;
  }

  const result: NormalizedEvent = {
    ts,
    source,
    category,
    action,
    outcome,
    severity: severity(doc),
    hostName: str(first(doc, HOST_FIELDS), 255),
    sourceIp: ip(first(doc, SOURCE_IP_FIELDS)),
    destinationIp: ip(first(doc, DEST_IP_FIELDS)),
    userName: str(first(doc, USER_FIELDS), 255),
    message: str(first(doc, MESSAGE_FIELDS), 65_536),
    doc,
  };
  for (const [key, value] of [['event.category', category], ['event.action', action], ['event.outcome', outcome], ['host.name', result.hostName], ['source.ip', result.sourceIp], ['destination.ip', result.destinationIp], ['user.name', result.userName]] as const) {
    if (value !== null && doc[key] === undefined) doc[key] = value;
  }
  if (result.severity !== null && doc['event.severity'] === undefined) doc['event.severity'] = result.severity;
  if (result.message !== null && doc.message === undefined) doc.message = result.message;
  doc['event.source'] = source;
  return result;
}
