import { isIP } from 'node:net';
import { normalize } from '../../ingest/normalize.js';
import { compileQuery, defaultSchema, type FieldType } from './compile.js';
import { parseQuery, QuerySyntaxError, type QueryNode } from './parser.js';

/**
 * Evaluates a parsed query against one event in memory, with the semantics of `compileQuery`
 * over the events table (see README.md, "In-memory matcher"). The event is the flat `doc` that
 * `normalize()` produced (as stored in `events.doc`); the values of the hot columns are derived
 * from it exactly as `normalize()` derives them.
 *
 * Everything is prepared once per query: wildcard patterns become linear glob matchers (no
 * regular expression is ever built from user input), IP literals become bytes, dates numbers.
 */
export type EventMatcher = (doc: Record<string, unknown>) => boolean;

/** Compiles a parsed query; throws QuerySyntaxError for the values `compileQuery` refuses (and those PostgreSQL would refuse at run time). */
export function compileMatcher(node: QueryNode): EventMatcher {
  // The same validation as the SQL compiler, so a query is refused here exactly when search refuses it.
  compileQuery(node);
  const test = build(node);
  return (doc) => test(new Context(doc));
}

/** Parses and evaluates in one go (compile once with `compileMatcher` when testing many events). */
export function matchesQuery(text: string, doc: Record<string, unknown>): boolean {
  return compileMatcher(parseQuery(text))(doc);
}

// ---------------------------------------------------------------------------------------------
// Per-event state: hot column values and the message's lexemes are derived lazily, once.

type Column = 'category' | 'action' | 'outcome' | 'severity' | 'hostName' | 'sourceIp' | 'destinationIp' | 'userName' | 'message';
type HotValue = string | number | Uint8Array | null;

const COLUMN_OF: Record<string, { key: Column | 'ts' | 'source'; max?: number }> = {
  '@timestamp': { key: 'ts' },
  'event.source': { key: 'source' },
  'event.category': { key: 'category', max: 1024 },
  'event.action': { key: 'action', max: 1024 },
  'event.outcome': { key: 'outcome', max: 1024 },
  'event.severity': { key: 'severity' },
  'host.name': { key: 'hostName', max: 255 },
  'source.ip': { key: 'sourceIp', max: 64 },
  'destination.ip': { key: 'destinationIp', max: 64 },
  'user.name': { key: 'userName', max: 255 },
  message: { key: 'message', max: 65_536 },
};

/** normalize.ts's `str`: arrays give their first element, values are cut at `max` UTF-16 units. */
function str(v: unknown, max: number): string | null {
  if (v === undefined || v === null || v === '') return null;
  const s = Array.isArray(v) ? String(v[0] ?? '') : String(v);
  return s.length > max ? s.slice(0, max) : s;
}

function ipText(v: unknown): string | null {
  const s = str(v, 64);
  if (!s) return null;
  const candidate = s.startsWith('::ffff:') && isIP(s.slice(7)) === 4 ? s.slice(7) : s;
  return isIP(candidate) ? candidate : null;
}

class Context {
  private readonly hot = new Map<string, HotValue>();
  private renormalized: Record<Column, unknown> | null | undefined;
  private lexemes: Map<string, number[]> | undefined;

  constructor(readonly doc: Record<string, unknown>) {}

  /** The value the column of a schema field holds for this event (IPs as bytes, @timestamp as ms). */
  column(field: string): HotValue {
    if (this.hot.has(field)) return this.hot.get(field)!;
    const value = this.derive(field);
    this.hot.set(field, value);
    return value;
  }

  private derive(field: string): HotValue {
    const spec = COLUMN_OF[field]!;
    if (spec.key === 'ts') {
      const v = this.doc['@timestamp'];
      const ms = typeof v === 'string' ? Date.parse(v) : Number.NaN;
      return Number.isNaN(ms) ? null : ms;
    }
    if (spec.key === 'source') return str(this.doc['event.source'], Number.MAX_SAFE_INTEGER);
    const raw = this.doc[field];
    // normalize() writes the column's value under the field's own name unless the event
    // brought that name itself, so a missing name means no value.
    if (raw === undefined) return null;
    if (spec.key === 'severity') {
      if (typeof raw === 'number' && Number.isInteger(raw)) return raw;
      if (typeof raw === 'string' && /^\d+$/.test(raw)) return Number(raw);
      return this.slow('severity') as number | null;
    }
    // A present but empty value makes normalize() look further (other names, Windows event
    // ids): ask it, rather than re-implement it.
    if (raw === null || raw === '') return this.finish(spec.key, this.slow(spec.key));
    if (spec.key === 'sourceIp' || spec.key === 'destinationIp') return this.finish(spec.key, ipText(raw));
    return str(raw, spec.max!);
  }

  private finish(key: Column, value: unknown): HotValue {
    if (value === null || value === undefined) return null;
    if (key === 'sourceIp' || key === 'destinationIp') return parseIp(String(value));
    return value as string | number;
  }

  /** The columns normalize() gives this doc (it reproduces them from its own output). */
  private slow(key: Column): unknown {
    if (this.renormalized === undefined) {
      try {
        const ingested = Date.parse(String(this.doc['event.ingested']));
        const e = normalize(this.doc, String(this.doc['event.source'] ?? ''), new Date(Number.isNaN(ingested) ? Date.now() : ingested));
        this.renormalized = { category: e.category, action: e.action, outcome: e.outcome, severity: e.severity, hostName: e.hostName, sourceIp: e.sourceIp, destinationIp: e.destinationIp, userName: e.userName, message: e.message };
      } catch {
        this.renormalized = null;
      }
    }
    return this.renormalized ? this.renormalized[key] : null;
  }

  /** The message's lexemes with their positions, as `to_tsvector('simple', message)` has them. */
  tsvector(): Map<string, number[]> {
    if (!this.lexemes) {
      const message = this.column('message');
      this.lexemes = new Map();
      tokenize(typeof message === 'string' ? message : '').forEach((lexeme, i) => {
        const pos = Math.min(i + 1, MAX_POSITION);
        const list = this.lexemes!.get(lexeme);
        if (!list) this.lexemes!.set(lexeme, [pos]);
        else if (list.length < MAX_POSITIONS_PER_LEXEME) list.push(pos);
      });
    }
    return this.lexemes;
  }
}

// ---------------------------------------------------------------------------------------------
// Text as PostgreSQL has it.

/** PostgreSQL's lower() in a C.UTF-8 database: a simple per-character mapping (no context, İ → i). */
export function pgLower(s: string): string {
  if (!/[\u0130\u03a3]/.test(s)) return s.toLowerCase();
  let out = '';
  for (const ch of s) out += ch === '\u0130' ? 'i' : ch === '\u03a3' ? '\u03c3' : ch.toLowerCase();
  return out;
}

/** Compares as the C collation does: by code point (UTF-8 byte order), not UTF-16 unit. */
function compareText(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (astral code points) sort after every BMP character in code point order.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** A JSON number as jsonb prints it (plain decimal notation, never an exponent). */
function numberText(n: number): string {
  const s = String(n);
  const e = s.indexOf('e');
  if (e < 0) return s;
  const negative = s.startsWith('-');
  const mantissa = s.slice(negative ? 1 : 0, e);
  const exponent = Number(s.slice(e + 1));
  const dot = mantissa.indexOf('.');
  const digits = mantissa.replace('.', '');
  const point = (dot < 0 ? mantissa.length : dot) + exponent;
  let out: string;
  if (point <= 0) out = `0.${'0'.repeat(-point)}${digits}`;
  else if (point >= digits.length) out = digits + '0'.repeat(point - digits.length);
  else out = `${digits.slice(0, point)}.${digits.slice(point)}`;
  return (negative ? '-' : '') + out;
}

function jsonbElement(v: unknown): string {
  if (typeof v === 'number') return numberText(v);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(jsonbElement).join(', ')}]`;
  return JSON.stringify(v) ?? 'null';
}

/** `doc ->> key`: strings as they are, other values as jsonb prints them, null for JSON null. */
function docText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  return jsonbElement(v);
}

/** `jsonb_array_elements_text`: one text per element (null for JSON null). */
function elementText(v: unknown): string | null {
  return typeof v === 'string' ? v : v === null || v === undefined ? null : jsonbElement(v);
}

// ---------------------------------------------------------------------------------------------
// ILIKE without regular expressions: `%` any run, `_` one character, `\` escapes.

type Glob = { segments: Array<Array<number | null>>; anchoredStart: boolean; anchoredEnd: boolean };

function compileLike(pattern: string): Glob {
  const segments: Array<Array<number | null>> = [[]];
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    let ch = chars[i]!;
    if (ch === '%') {
      segments.push([]);
      continue;
    }
    if (ch === '_') {
      segments.at(-1)!.push(null);
      continue;
    }
    if (ch === '\\' && i + 1 < chars.length) ch = chars[++i]!;
    segments.at(-1)!.push(pgLower(ch).codePointAt(0)!);
  }
  return { segments, anchoredStart: true, anchoredEnd: true };
}

function segmentAt(seg: Array<number | null>, s: number[], at: number): boolean {
  for (let j = 0; j < seg.length; j++) if (seg[j] !== null && seg[j] !== s[at + j]) return false;
  return true;
}

function ilike(glob: Glob, text: string): boolean {
  const s: number[] = [];
  for (const ch of pgLower(text)) s.push(ch.codePointAt(0)!);
  const segs = glob.segments;
  if (segs.length === 1) return s.length === segs[0]!.length && segmentAt(segs[0]!, s, 0);
  const first = segs[0]!;
  const last = segs.at(-1)!;
  if (first.length + last.length > s.length) return false;
  if (!segmentAt(first, s, 0) || !segmentAt(last, s, s.length - last.length)) return false;
  // Middle segments: leftmost occurrence each (optimal for globs), no backtracking.
  let pos = first.length;
  const end = s.length - last.length;
  for (let k = 1; k < segs.length - 1; k++) {
    const seg = segs[k]!;
    let found = -1;
    for (let at = pos; at + seg.length <= end; at++) {
      if (segmentAt(seg, s, at)) {
        found = at;
        break;
      }
    }
    if (found < 0) return false;
    pos = found + seg.length;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// IP addresses as bytes (IPv4: 4, IPv6: 16), so equality, order and CIDR follow inet.

function parseIp(text: string): Uint8Array | null {
  const version = isIP(text);
  if (version === 4) return Uint8Array.from(text.split('.').map(Number));
  if (version !== 6) return null;
  let body = text;
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.', lastColon)) {
    // An embedded IPv4 tail (`::ffff:1.2.3.4`) becomes two hexadecimal words.
    const v4 = body.slice(lastColon + 1).split('.').map(Number) as [number, number, number, number];
    body = `${body.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const words = (p: string) => (p ? p.split(':').map((w) => parseInt(w, 16)) : []);
  let all: number[];
  const gap = body.indexOf('::');
  if (gap >= 0) {
    const left = words(body.slice(0, gap));
    const right = words(body.slice(gap + 2));
    all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    all = words(body);
  }
  if (all.length !== 8) return null;
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

function compareIp(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length; // IPv4 sorts before IPv6
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function inCidr(addr: Uint8Array, net: Uint8Array, bits: number): boolean {
  if (addr.length !== net.length) return false;
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i % 8);
    if ((addr[i >> 3]! & mask) !== (net[i >> 3]! & mask)) return false;
  }
  return true;
}

function hasHostBits(net: Uint8Array, bits: number): boolean {
  for (let i = bits; i < net.length * 8; i++) if (net[i >> 3]! & (0x80 >> (i % 8))) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// The text search parser of PostgreSQL ('default' parser, 'simple' configuration), approximated:
// e-mail addresses, URLs (url, host and path), file paths, host names, version numbers and
// floats stay one lexeme; hyphenated words give the whole word and each part; `_`, `'`, `:`, `\`
// and other symbols separate words; XML tags and entities are dropped. Lexemes are lowercased.

const MAX_POSITION = 16_383;
const MAX_POSITIONS_PER_LEXEME = 255;
const MAX_LEXEME_BYTES = 2047;
// Quantifiers are bounded (a DNS label has at most 63 characters) so that a failed attempt looks
// ahead a bounded distance: tokenising stays linear in the message length.
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const TAG = /<\/?[A-Za-z][^<>]*>/y;
const ENTITY = /&(?:[A-Za-z]{1,32}|#\d{1,8}|#x[0-9A-Fa-f]{1,8});/y;
const EMAIL = new RegExp(`[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?@${LABEL}(?:\\.${LABEL}){1,126}`, 'y');
const URL_RE = new RegExp(`(?:https?|ftp)://(${LABEL}(?:\\.${LABEL}){1,126}(?::\\d{1,5})?)((?:/[^\\s"'<>]*)?)`, 'y');
const PATH = /(?:[A-Za-z][A-Za-z0-9_.-]{0,254})?(?:\/[A-Za-z0-9_.-]+)+/y;
// Host names end in a label that starts with a letter; dotted names without hyphens (`v1.2.3`, `a.b.c`) are one lexeme too.
const HOST = new RegExp(`[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.${LABEL}){0,126}\\.[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?|[A-Za-z][A-Za-z0-9]{0,254}(?:\\.[A-Za-z0-9]+)+`, 'y');
const NUMBER_RE = /-?\d+(?:\.\d+)*(?:[eE][+-]?\d+)?/y;
const WORD = /[\p{L}\p{N}]+/uy;
const LETTER = /\p{L}/u;
const WORD_CHAR = /[\p{L}\p{N}]/u;

function sticky(re: RegExp, s: string, at: number): RegExpExecArray | null {
  re.lastIndex = at;
  return re.exec(s);
}

function hyphenated(text: string, at: number): string[] {
  const parts: string[] = [];
  let pos = at;
  for (;;) {
    const m = sticky(WORD, text, pos);
    if (!m || !LETTER.test(m[0])) return parts;
    parts.push(m[0]);
    pos += m[0].length;
    if (text[pos] !== '-') return parts;
    pos++;
  }
}

/** The lexemes of a text, in order (their positions are 1, 2, 3, …). */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  const push = (lexeme: string) => {
    if (Buffer.byteLength(lexeme) <= MAX_LEXEME_BYTES) out.push(pgLower(lexeme));
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    let m: RegExpExecArray | null;
    if (c === '<' && (m = sticky(TAG, text, i))) {
      i += m[0].length;
      continue;
    }
    if (c === '&' && (m = sticky(ENTITY, text, i))) {
      i += m[0].length;
      continue;
    }
    const ascii = /[A-Za-z0-9]/.test(c);
    if (ascii && (m = sticky(EMAIL, text, i))) {
      push(m[0]);
      i += m[0].length;
      continue;
    }
    if ((c === 'h' || c === 'f' || c === 'H' || c === 'F') && (m = sticky(URL_RE, text, i))) {
      if (m[2]) push(m[1]! + m[2]);
      push(m[1]!);
      if (m[2]) push(m[2]);
      i += m[0].length;
      continue;
    }
    if ((c === '/' || /[A-Za-z]/.test(c)) && (m = sticky(PATH, text, i))) {
      push(m[0]);
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z]/.test(c) && (m = sticky(HOST, text, i)) && !WORD_CHAR.test(text[i + m[0].length] ?? '')) {
      push(m[0]);
      i += m[0].length;
      continue;
    }
    if (WORD_CHAR.test(c)) {
      // A hyphenated word: its parts up to the first one without a letter (`web-1` is `web` and `-1`).
      const parts = hyphenated(text, i);
      if (parts.length >= 2) {
        const whole = parts.join('-');
        push(whole);
        for (const part of parts) push(part);
        i += whole.length;
        continue;
      }
    }
    if ((/\d/.test(c) || (c === '-' && /\d/.test(text[i + 1] ?? ''))) && (m = sticky(NUMBER_RE, text, i)) && (c === '-' || !LETTER.test(text[i + m[0].length] ?? ''))) {
      push(m[0]);
      i += m[0].length;
      continue;
    }
    if ((m = sticky(WORD, text, i))) {
      push(m[0]);
      i += m[0].length;
      continue;
    }
    i += c.codePointAt(0)! > 0xffff ? 2 : 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The query, compiled to closures.

type Test = (ctx: Context) => boolean;
type TermNode = Extract<QueryNode, { type: 'term' }>;
type RangeNode = Extract<QueryNode, { type: 'range' }>;

const NUMBER = /^-?\d+(\.\d+)?$/;
const NEVER: Test = () => false;

function schemaType(field: string): FieldType | null {
  return Object.hasOwn(defaultSchema, field) ? defaultSchema[field]!.type : null;
}

function fullText(value: string, phrase: boolean): Test {
  const lexemes = tokenize(value);
  // A query without lexemes matches nothing (PostgreSQL: "doesn't contain lexemes, ignored").
  if (lexemes.length === 0) return NEVER;
  if (!phrase || lexemes.length === 1) {
    const wanted = [...new Set(lexemes)];
    return (ctx) => {
      const tsv = ctx.tsvector();
      return wanted.every((l) => tsv.has(l));
    };
  }
  return (ctx) => {
    const tsv = ctx.tsvector();
    const lists = lexemes.map((l) => tsv.get(l));
    if (lists.some((l) => !l)) return false;
    const sets = lists.map((l) => new Set(l));
    return lists[0]!.some((p) => sets.every((set, k) => set.has(p + k)));
  };
}

function term(node: TermNode): Test {
  if (node.field === null) {
    if (node.wildcard) {
      const glob = compileLike(node.wildcard);
      return (ctx) => {
        const m = ctx.column('message');
        return typeof m === 'string' && ilike(glob, m);
      };
    }
    return fullText(node.value, node.phrase);
  }
  const field = node.field;
  const type = schemaType(field);
  if (type === null) {
    if (node.wildcard) {
      const glob = compileLike(node.wildcard);
      return (ctx) => {
        const text = docText(ctx.doc[field]);
        return text !== null && ilike(glob, text);
      };
    }
    const wanted = pgLower(node.value);
    return (ctx) => {
      const v = ctx.doc[field];
      const text = docText(v);
      if (text !== null && pgLower(text) === wanted) return true;
      return Array.isArray(v) && v.some((el) => {
        const t = elementText(el);
        return t !== null && pgLower(t) === wanted;
      });
    };
  }
  const text = (ctx: Context) => {
    const v = ctx.column(field);
    return typeof v === 'string' ? v : null;
  };
  switch (type) {
    case 'text':
    case 'keyword':
      if (node.wildcard) {
        const glob = compileLike(node.wildcard);
        return (ctx) => {
          const v = text(ctx);
          return v !== null && ilike(glob, v);
        };
      }
      if (type === 'text') return fullText(node.value, node.phrase); // message is the only text column
      return (ctx) => text(ctx) === node.value;
    case 'integer': {
      const n = Number(node.value);
      if (n < -2147483648 || n > 2147483647) throw new QuerySyntaxError(node.position, `a whole number within the range of ${field}`, node.value);
      return (ctx) => ctx.column(field) === n;
    }
    case 'ip': {
      if (node.value.includes('/')) {
        const [net, bits] = node.value.split('/') as [string, string];
        const bytes = parseIp(net)!;
        if (hasHostBits(bytes, Number(bits))) throw new QuerySyntaxError(node.position, `a CIDR block without bits set right of the mask for ${field}`, node.value);
        return (ctx) => {
          const v = ctx.column(field);
          return v instanceof Uint8Array && inCidr(v, bytes, Number(bits));
        };
      }
      const bytes = parseIp(node.value)!;
      return (ctx) => {
        const v = ctx.column(field);
        return v instanceof Uint8Array && compareIp(v, bytes) === 0;
      };
    }
    case 'timestamp': {
      const ms = new Date(node.value).getTime();
      return (ctx) => ctx.column(field) === ms;
    }
  }
}

type Cmp = (c: number) => boolean;
const ops: Record<string, Cmp> = { '>=': (c) => c >= 0, '>': (c) => c > 0, '<=': (c) => c <= 0, '<': (c) => c < 0 };

function range(node: RangeNode): Test {
  const field = node.field;
  const type = schemaType(field);
  const tests: Test[] = [];
  const bound = (value: string, op: Cmp) => {
    if (type === null) {
      if (NUMBER.test(value)) {
        const n = Number(value);
        tests.push((ctx) => {
          const v = ctx.doc[field];
          return typeof v === 'number' && op(v - n);
        });
      } else {
        tests.push((ctx) => {
          const v = docText(ctx.doc[field]);
          return v !== null && op(compareText(v, value));
        });
      }
      return;
    }
    switch (type) {
      case 'integer':
      case 'timestamp': {
        const n = type === 'integer' ? Number(value) : new Date(value).getTime();
        tests.push((ctx) => {
          const v = ctx.column(field);
          return typeof v === 'number' && op(v - n);
        });
        return;
      }
      case 'ip': {
        const bytes = parseIp(value)!;
        tests.push((ctx) => {
          const v = ctx.column(field);
          return v instanceof Uint8Array && op(compareIp(v, bytes));
        });
        return;
      }
      default:
        tests.push((ctx) => {
          const v = ctx.column(field);
          return typeof v === 'string' && op(compareText(v, value));
        });
    }
  };
  if (node.lower !== null) bound(node.lower, node.includeLower ? ops['>=']! : ops['>']!);
  if (node.upper !== null) bound(node.upper, node.includeUpper ? ops['<=']! : ops['<']!);
  if (tests.length === 0) return exists(field);
  return (ctx) => tests.every((t) => t(ctx));
}

function exists(field: string): Test {
  if (schemaType(field) !== null) return (ctx) => ctx.column(field) !== null;
  return (ctx) => Object.hasOwn(ctx.doc, field);
}

function build(node: QueryNode): Test {
  switch (node.type) {
    case 'all':
      return () => true;
    case 'and': {
      const l = build(node.left);
      const r = build(node.right);
      return (ctx) => l(ctx) && r(ctx);
    }
    case 'or': {
      const l = build(node.left);
      const r = build(node.right);
      return (ctx) => l(ctx) || r(ctx);
    }
    case 'not': {
      // SQL's NULL (a missing field) is "no match" here already, which is what NOT coalesce(…, false) needs.
      const c = build(node.child);
      return (ctx) => !c(ctx);
    }
    case 'exists':
      return exists(node.field);
    case 'term':
      return term(node);
    case 'range':
      return range(node);
  }
}
