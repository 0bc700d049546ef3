import { isIP } from 'node:net';

/** What an observable can be. */
export const OBSERVABLE_TYPES = ['ip', 'domain', 'url', 'hash', 'user', 'host'] as const;
export type ObservableType = (typeof OBSERVABLE_TYPES)[number];

export interface ExtractedObservable {
  type: ObservableType;
  value: string;
  /** The event field it came from. */
  field: string;
}

// Event fields (flat dotted keys of the normalised doc, ECS and original source names) per type.
const IP_FIELDS = ['source.ip', 'destination.ip', 'client.ip', 'server.ip', 'host.ip', 'related.ip', 'SourceIp', 'DestinationIp', 'IpAddress', 'src_ip', 'dst_ip', 'winlog.event_data.IpAddress'];
const DOMAIN_FIELDS = ['url.domain', 'destination.domain', 'source.domain', 'server.domain', 'client.domain', 'dns.question.name', 'QueryName', 'DestinationHostname', 'http.request.host'];
const URL_FIELDS = ['url.full', 'url.original', 'http.url', 'request.url'];
const USER_FIELDS = ['user.name', 'source.user.name', 'destination.user.name', 'TargetUserName', 'User', 'winlog.event_data.TargetUserName'];
const HOST_FIELDS = ['host.name', 'host.hostname', 'Computer', 'Hostname', 'winlog.computer_name'];
// Sysmon's Hashes (`SHA1=…,MD5=…,SHA256=…,IMPHASH=…`) and single-hash fields.
const HASHES_FIELDS = ['Hashes', 'Hash', 'winlog.event_data.Hashes'];
const HASH_FIELD = /(^|\.)hash\.(md5|sha1|sha256|sha512)$|^(md5|sha1|sha256|sha512)$/i;
const HASH_ALGORITHMS = new Set(['MD5', 'SHA1', 'SHA256', 'SHA512']);

const HEX = /^[0-9a-f]+$/i;
const HASH_LENGTHS = new Set([32, 40, 64, 128]);
const DOMAIN = /^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$/i;
const PLACEHOLDERS = new Set(['-', 'n/a', 'null', 'none', 'unknown', '']);

/** Checks one value of a type; returns it trimmed (and normalised where the type allows), or null when it is not one. */
export function normaliseObservable(type: ObservableType, raw: unknown): string | null {
  if (typeof raw !== 'string' && typeof raw !== 'number') return null;
  const value = String(raw).trim();
  if (PLACEHOLDERS.has(value.toLowerCase()) || value.length > 2048) return null;
  switch (type) {
    case 'ip': {
      const ip = value.startsWith('::ffff:') && isIP(value.slice(7)) === 4 ? value.slice(7) : value;
      if (!isIP(ip) || ip === '0.0.0.0' || ip === '::' || ip === '127.0.0.1' || ip === '::1') return null;
      return ip.toLowerCase();
    }
    case 'domain': {
      const domain = value.replace(/\.$/, '').toLowerCase();
      return DOMAIN.test(domain) && !isIP(domain) ? domain : null;
    }
    case 'url': {
      if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return null;
      try {
        return new URL(value).href;
      } catch {
        return null;
      }
    }
    case 'hash':
      return HEX.test(value) && HASH_LENGTHS.has(value.length) && !/^0+$/.test(value) ? value.toLowerCase() : null;
    case 'user':
    case 'host':
      return value.length <= 256 && !/[\0\n\r]/.test(value) ? value : null;
  }
}

/**
 * Observables in one event (a flat doc of dotted keys): addresses, domains, URLs, file hashes
 * (including Sysmon's `Hashes=SHA256=…`), user and host names. Duplicates are removed.
 */
export function extractObservables(doc: Record<string, unknown>): ExtractedObservable[] {
  const out = new Map<string, ExtractedObservable>();
  const add = (type: ObservableType, raw: unknown, field: string) => {
    for (const item of Array.isArray(raw) ? raw : [raw]) {
      const value = normaliseObservable(type, item);
      if (value === null) continue;
      const key = `${type}\n${value.toLowerCase()}`;
      if (!out.has(key)) out.set(key, { type, value, field });
    }
  };
  for (const field of IP_FIELDS) add('ip', doc[field], field);
  for (const field of DOMAIN_FIELDS) add('domain', doc[field], field);
  for (const field of URL_FIELDS) {
    add('url', doc[field], field);
    const raw = doc[field];
    if (typeof raw === 'string') {
      try {
        const host = new URL(raw).hostname;
        if (isIP(host.replace(/^\[|\]$/g, ''))) add('ip', host.replace(/^\[|\]$/g, ''), field);
        else add('domain', host, field);
      } catch {
        // not a URL
      }
    }
  }
  for (const field of USER_FIELDS) add('user', doc[field], field);
  for (const field of HOST_FIELDS) add('host', doc[field], field);
  for (const field of HASHES_FIELDS) {
    const raw = doc[field];
    if (typeof raw !== 'string') continue;
    for (const pair of raw.split(',')) {
      const [algorithm, value] = pair.split('=');
      if (algorithm && value && HASH_ALGORITHMS.has(algorithm.trim().toUpperCase())) add('hash', value, field);
      else if (!value && algorithm) add('hash', algorithm, field);
    }
  }
  for (const [field, raw] of Object.entries(doc)) if (HASH_FIELD.test(field)) add('hash', raw, field);
  return [...out.values()];
}
