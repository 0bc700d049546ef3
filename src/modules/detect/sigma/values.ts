import { BlockList, isIP } from 'node:net';
import { RE2JS } from 're2js';
import { HIT_ANYWHERE, HIT_AT_END, HIT_AT_START, HIT_WHOLE, type LiteralIndex } from './literals.js';
import { requiredLiterals } from './regex-literals.js';
import { triggerOfAll, triggerOfAny, withTrigger } from './trigger.js';

/**
 * Sigma values and modifiers, compiled once per rule into matchers over one field's value.
 *
 * A Sigma string is case-insensitive and may hold `*` (any run of characters) and `?` (one
 * character); `\*`, `\?` and `\\` are the literal characters, and any other backslash is itself.
 * Modifiers either transform the rule's values (windash, base64, base64offset, utf16*, wide,
 * expand) or choose how they compare (contains, startswith, endswith, re, cidr, lt/lte/gt/gte,
 * exists, fieldref, neq, cased, time parts), and `all` joins the values with AND.
 */

export class SigmaValueError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

/** One pattern piece: literal text or a wildcard. */
type Piece = { lit: string } | { any: true } | { one: true };

/** A Sigma string parsed into literal pieces and wildcards. */
export class SigmaString {
  constructor(readonly pieces: Piece[]) {}

  static parse(value: string): SigmaString {
    const pieces: Piece[] = [];
    let lit = '';
    for (let i = 0; i < value.length; i++) {
      const c = value[i]!;
      if (c === '\\' && i + 1 < value.length && (value[i + 1] === '*' || value[i + 1] === '?' || value[i + 1] === '\\')) {
        lit += value[++i];
      } else if (c === '*' || c === '?') {
        if (lit) pieces.push({ lit });
        lit = '';
        pieces.push(c === '*' ? { any: true } : { one: true });
      } else {
        lit += c;
      }
    }
    if (lit) pieces.push({ lit });
    return new SigmaString(pieces);
  }

  static literal(text: string): SigmaString {
    return new SigmaString(text ? [{ lit: text }] : []);
  }

  get hasWildcards(): boolean {
    return this.pieces.some((p) => !('lit' in p));
  }

  /** The text with wildcards removed — only meaningful when there are none. */
  get plain(): string {
    return this.pieces.map((p) => ('lit' in p ? p.lit : '')).join('');
  }

  withAnyAround(start: boolean, end: boolean): SigmaString {
    const pieces = [...this.pieces];
    if (start && !(pieces[0] && 'any' in pieces[0])) pieces.unshift({ any: true });
    if (end && !(pieces.at(-1) && 'any' in pieces.at(-1)!)) pieces.push({ any: true });
    return new SigmaString(pieces);
  }

  mapLiterals(fn: (text: string) => string): SigmaString {
    return new SigmaString(this.pieces.map((p) => ('lit' in p ? { lit: fn(p.lit) } : p)));
  }
}

/** Windows command-line dash characters that `windash` makes interchangeable. */
const WINDASH = ['-', '/', '\u2013', '\u2014', '\u2015'];
// As pySigma: a dash or slash that starts a word (not inside one) is a flag character.
const WINDASH_POSITION = /\B[-/]\b/g;

export function windashVariants(text: string): string[] {
  const positions = [...text.matchAll(WINDASH_POSITION)].map((m) => m.index);
  if (positions.length === 0) return [text];
  if (positions.length > 4) throw new SigmaValueError('too_complex', `windash on a value with ${positions.length} flags expands to too many variants`);
  let variants = [''];
  let last = 0;
  for (const pos of positions) {
    const between = text.slice(last, pos);
    variants = variants.flatMap((v) => WINDASH.map((d) => v + between + d));
    last = pos + 1;
  }
  return variants.map((v) => v + text.slice(last));
}

const B64_START = [0, 2, 3];
const B64_END = [undefined, -3, -2];

/** The three base64 forms a value takes depending on its offset in an encoded string. */
export function base64OffsetVariants(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i < 3; i++) {
    const encoded = Buffer.concat([Buffer.alloc(i, 0x20), bytes]).toString('base64');
    out.push(encoded.slice(B64_START[i], B64_END[(bytes.length + i) % 3]));
  }
  return out;
}

function utf16be(text: string): Buffer {
  const le = Buffer.from(text, 'utf16le');
  for (let i = 0; i + 1 < le.length; i += 2) {
    const t = le[i]!;
    le[i] = le[i + 1]!;
    le[i + 1] = t;
  }
  return le;
}

/** A value on its way through the transforming modifiers: text, or bytes after an encoding. */
type Carried = { text: string } | { bytes: Buffer };
const asBytes = (v: Carried): Buffer => ('bytes' in v ? v.bytes : Buffer.from(v.text, 'utf8'));
const asText = (v: Carried): string => ('text' in v ? v.text : v.bytes.toString('latin1'));

export const TRANSFORMS = new Set(['windash', 'base64', 'base64offset', 'utf16le', 'utf16be', 'utf16', 'wide', 'expand']);
export const COMPARISONS = new Set(['contains', 'startswith', 'endswith', 're', 'cidr', 'lt', 'lte', 'gt', 'gte', 'exists', 'fieldref']);
export const FLAGS = new Set(['all', 'cased', 'neq', 'i', 'm', 's']);
export const TIME_PARTS = new Set(['minute', 'hour', 'day', 'week', 'month', 'year']);
export const KNOWN_MODIFIERS = new Set([...TRANSFORMS, ...COMPARISONS, ...FLAGS, ...TIME_PARTS]);

/**
 * The event as rules see it. Field names are Sigma names, resolved by the view (mapping
 * included); text forms are computed once per event and shared by every rule.
 */
export interface FieldAccess {
  /** The field's value, or undefined when the event does not have it. */
  get(field: string): unknown;
  /** Text forms of the value (arrays element by element), or null when absent or null. */
  texts(field: string): string[] | null;
  /** The same, lower-cased. */
  lowerTexts(field: string): string[] | null;
  /** Every string value of the event, for keyword searches. */
  keywordTexts(lower: boolean): string[];
  /** Whether a test holds for any of the values `keywordTexts(false)` lists (a faster path where available). */
  someKeywordText?(test: (text: string) => boolean): boolean;
  /** Registered literals found in the field (null: keywords), with where (see literals.ts); needs a literal index. */
  literalHits?(field: string | null): Map<number, number>;
}

/** A compiled detection item: does this event satisfy `field|modifiers: values`? */
export type ItemMatcher = (event: FieldAccess) => boolean;

export interface CompileContext {
  /** Placeholder values for `expand` (`%name%` → values), per workspace. */
  placeholders?: Record<string, string[]>;
  /** When given, simple case-insensitive literals are matched through it, all rules at once. */
  literals?: LiteralIndex;
}

/** Alternatives of one item that are tested through the literal index. */
interface LiteralGroup {
  /** literal id → where it must occur (bits; any of them will do) */
  wanted: Map<number, number>;
  /** values that are not plain literals, tested one by one */
  others: Array<(text: string) => boolean>;
  /** every value as its own test, for fields with too few literals for the index */
  direct: Array<(text: string) => boolean>;
}

const newLiteralGroup = (): LiteralGroup => ({ wanted: new Map(), others: [], direct: [] });

/** The index's key for keyword literals (`field` null): they are found in the event's joined keyword text. */
export const KEYWORDS_KEY = '';

function literalTest(group: LiteralGroup, index: LiteralIndex, field: string | null, readAllLower: (e: FieldAccess) => string[] | null): (e: FieldAccess) => boolean {
  const { wanted, others, direct } = group;
  const key = field ?? KEYWORDS_KEY;
  // Whether the field's literals go through the automaton is known once all rules are loaded,
  // so it is looked up on first use.
  let indexed: boolean | undefined;
  const test = (e: FieldAccess): boolean => {
    indexed ??= index.indexed(key);
    if (!indexed) return readAllLower(e)?.some((t) => direct.some((f) => f(t))) ?? false;
    const hits = e.literalHits!(field);
    if (hits.size > 0) {
      if (hits.size < wanted.size) {
        for (const [id, bits] of hits) if (((wanted.get(id) ?? 0) & bits) !== 0) return true;
      } else {
        for (const [id, bit] of wanted) if (((hits.get(id) ?? 0) & bit) !== 0) return true;
      }
    }
    if (others.length === 0) return false;
    return readAllLower(e)?.some((t) => others.some((f) => f(t))) ?? false;
  };
  // Without other values, the test holds only when one of its literals was found (whether the
  // field goes through the automaton or not, the index's hits say the same as the direct tests).
  return withTrigger(test, others.length === 0 && wanted.size > 0 ? [{ index, field, wanted }] : null);
}

/** The literal and where it must occur, when a pattern is a literal with at most a leading and trailing `*`. */
function literalShape(s: SigmaString): { text: string; bit: number } | null {
  const p = s.pieces;
  const lit = (i: number) => { const x = p[i]; return x && 'lit' in x ? x.lit : null; };
  const any = (i: number) => { const x = p[i]; return x !== undefined && 'any' in x; };
  if (p.length === 1 && lit(0)) return { text: lit(0)!, bit: HIT_WHOLE };
  if (p.length === 2 && any(0) && lit(1)) return { text: lit(1)!, bit: HIT_AT_END };
  if (p.length === 2 && lit(0) && any(1)) return { text: lit(0)!, bit: HIT_AT_START };
  if (p.length === 3 && any(0) && lit(1) && any(2)) return { text: lit(1)!, bit: HIT_ANYWHERE };
  return null;
}

const NUMERIC = /^-?\d+(\.\d+)?$/;
/** An `expand` placeholder: `%name%` not preceded by a backslash (the name is captured). */
const PLACEHOLDER = /(?<!\\)%([A-Za-z0-9_.-]+)%/;

/** Text forms of a field's value: scalars once, arrays element by element. */
export function textForms(value: unknown): string[] | null {
  if (value === undefined || value === null) return null;
  if (Array.isArray(value)) return value.filter((v) => v !== null && v !== undefined).map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v)));
  if (typeof value === 'object') return [JSON.stringify(value)];
  return [String(value)];
}

/**
 * A string predicate for one Sigma string. Unless `cased`, the pattern is lower-cased and the
 * text given to the predicate must already be lower-cased (the event view caches that).
 */
export function stringPredicate(pattern: SigmaString, cased: boolean): (text: string) => boolean {
  const p = cased ? pattern : pattern.mapLiterals((t) => t.toLowerCase());
  const pieces = p.pieces;
  const norm = (s: string) => s;
  if (!p.hasWildcards) {
    const want = p.plain;
    return (s) => norm(s) === want;
  }
  const lits = pieces.map((x) => ('lit' in x ? x.lit : null));
  // The common shapes get string methods; the rest a linear glob matcher.
  if (pieces.length === 2 && 'any' in pieces[0]! && lits[1] !== null) {
    const suffix = lits[1]!;
    return (s) => norm(s).endsWith(suffix);
  }
  if (pieces.length === 2 && lits[0] !== null && 'any' in pieces[1]!) {
    const prefix = lits[0]!;
    return (s) => norm(s).startsWith(prefix);
  }
  if (pieces.length === 3 && 'any' in pieces[0]! && lits[1] !== null && 'any' in pieces[2]!) {
    const inner = lits[1]!;
    return (s) => norm(s).includes(inner);
  }
  if (pieces.length === 1 && 'any' in pieces[0]!) return () => true;
  // A match places the literal pieces in order without overlap, so each must be found after the
  // previous one: native substring searches reject most texts before the glob matcher runs.
  const required = lits.filter((x): x is string => x !== null);
  return (s) => {
    let from = 0;
    for (let i = 0; i < required.length; i++) {
      const at = s.indexOf(required[i]!, from);
      if (at < 0) return false;
      from = at + required[i]!.length;
    }
    return globMatch(pieces, norm(s));
  };
}

/**
 * Glob matching with `*` and `?` without backtracking blow-up: greedy with one restart point
 * per star, the classic linear-space algorithm (worst case O(n·m)).
 */
function globMatch(pieces: Piece[], s: string): boolean {
  // Expand to a char-level pattern once per call is wasteful; pieces are short, so walk them.
  let pi = 0;
  let si = 0;
  let starPi = -1;
  let starSi = 0;
  while (si < s.length || pi < pieces.length) {
    if (pi < pieces.length) {
      const piece = pieces[pi]!;
      if ('any' in piece) {
        starPi = pi++;
        starSi = si;
        continue;
      }
      if ('one' in piece) {
        if (si < s.length) {
          pi++;
          si++;
          continue;
        }
      } else if (s.startsWith(piece.lit, si)) {
        pi++;
        si += piece.lit.length;
        continue;
      }
    }
    if (starPi >= 0 && starSi < s.length) {
      pi = starPi + 1;
      si = ++starSi;
      continue;
    }
    return false;
  }
  return true;
}

/** Parses the value list of an item: scalars become strings, numbers and booleans keep their text. */
function valueList(raw: unknown, field: string): unknown[] {
  const list = Array.isArray(raw) ? raw : [raw];
  for (const v of list) {
    if (v !== null && typeof v === 'object') throw new SigmaValueError('invalid_value', `field "${field}" has a nested value; values must be strings, numbers, booleans or null`);
  }
  return list;
}

function parseCidr(cidr: string): { list: BlockList } {
  const [addr, bitsText] = cidr.split('/');
  const family = isIP(addr ?? '');
  const bits = bitsText === undefined ? (family === 6 ? 128 : 32) : Number(bitsText);
  if (!family || !Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) throw new SigmaValueError('invalid_value', `"${cidr}" is not a CIDR block`);
  const list = new BlockList();
  list.addSubnet(addr!, bits, family === 6 ? 'ipv6' : 'ipv4');
  return { list };
}

function inCidr(list: BlockList, value: string): boolean {
  const v = value.startsWith('::ffff:') && isIP(value.slice(7)) === 4 ? value.slice(7) : value;
  const family = isIP(v);
  if (!family) return false;
  return list.check(v, family === 6 ? 'ipv6' : 'ipv4');
}

function timePart(part: string, text: string): number | null {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) return null;
  const d = new Date(ms);
  switch (part) {
    case 'minute': return d.getUTCMinutes();
    case 'hour': return d.getUTCHours();
    case 'day': return d.getUTCDate();
    case 'month': return d.getUTCMonth() + 1;
    case 'year': return d.getUTCFullYear();
    default: { // ISO week number
      const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
      const day = t.getUTCDay() || 7;
      t.setUTCDate(t.getUTCDate() + 4 - day);
      const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
      return Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
    }
  }
}

const compareNumber = (op: string, a: number, b: number): boolean =>
  op === 'lt' ? a < b : op === 'lte' ? a <= b : op === 'gt' ? a > b : op === 'gte' ? a >= b : a === b;

/**
 * Compiles `field|m1|m2: values` into a matcher. `read` resolves a Sigma field name on the event
 * (mapping included); `field` null means keywords (any value of the event).
 */
export function compileItem(field: string | null, modifiers: string[], rawValues: unknown, ctx: CompileContext = {}): ItemMatcher {
  const label = field ?? 'keywords';
  for (const m of modifiers) {
    if (!KNOWN_MODIFIERS.has(m)) throw new SigmaValueError('unsupported_modifier', `unknown modifier "${m}" on ${label}`);
  }
  const has = (m: string) => modifiers.includes(m);
  const values = valueList(rawValues, label);
  const all = has('all');
  const cased = has('cased');
  const negate = has('neq');
  const comparisons = modifiers.filter((m) => COMPARISONS.has(m));
  const timeParts = modifiers.filter((m) => TIME_PARTS.has(m));
  if (comparisons.length > 1) throw new SigmaValueError('invalid_modifiers', `modifiers ${comparisons.join(', ')} cannot be combined on ${label}`);
  const comparison = comparisons[0];
  if ((has('i') || has('m') || has('s')) && comparison !== 're') throw new SigmaValueError('invalid_modifiers', `i, m and s only go with re (on ${label})`);
  if (all && values.length < 2 && !has('windash') && !has('base64offset') && !has('expand')) {
    // Allowed by most tools though the spec discourages it; it is simply the value itself.
  }
  const read = (e: FieldAccess, name: string) => e.get(name);
  const readAll = field === null ? (e: FieldAccess) => e.keywordTexts(false) : (e: FieldAccess) => e.texts(field);
  const readAllLower = field === null ? (e: FieldAccess) => e.keywordTexts(true) : (e: FieldAccess) => e.lowerTexts(field);

  // exists takes a boolean and ignores the rest.
  if (comparison === 'exists') {
    if (field === null) throw new SigmaValueError('invalid_modifiers', 'exists needs a field');
    const want = values[0] === true || values[0] === 'true';
    if (values.length !== 1 || (typeof values[0] !== 'boolean' && values[0] !== 'true' && values[0] !== 'false')) throw new SigmaValueError('invalid_value', `exists on ${label} takes true or false`);
    return (e) => (read(e, field) !== undefined) === want;
  }

  // One predicate per value, over the field's text forms.
  type Pred = (e: FieldAccess) => boolean;
  const preds: Pred[] = [];
  let shared: LiteralGroup | undefined;
  // Case-insensitive keyword values that are plain `contains` literals (nearly all): one regular
  // expression over the joined keyword text finds any of them several times faster than one
  // substring search per value (V8 skips ahead over the alternation).
  const keywordLiterals: string[] = [];
  for (const value of values) {
    if (value === null) {
      preds.push(field === null ? () => false : (e) => {
        const v = read(e, field);
        return v === undefined || v === null;
      });
      continue;
    }
    if (comparison === 'fieldref') {
      if (field === null) throw new SigmaValueError('invalid_modifiers', 'fieldref needs a field');
      const other = String(value);
      const matchCase = cased;
      preds.push((e) => {
        const a = e.texts(field);
        const b = e.texts(other);
        if (!a || !b) return false;
        return a.some((x) => b.some((y) => (matchCase ? x === y : x.toLowerCase() === y.toLowerCase())));
      });
      continue;
    }
    if (comparison === 'lt' || comparison === 'lte' || comparison === 'gt' || comparison === 'gte' || (timeParts.length > 0)) {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new SigmaValueError('invalid_value', `${comparison ?? timeParts[0]} on ${label} needs a number, got "${String(value)}"`);
      const op = comparison ?? 'eq';
      const part = timeParts[0];
      preds.push((e) => {
        const ts = readAll(e);
        if (!ts) return false;
        return ts.some((t) => {
          const x = part ? timePart(part, t) : NUMERIC.test(t.trim()) ? Number(t) : Number.NaN;
          return x !== null && !Number.isNaN(x) && compareNumber(op, x, n);
        });
      });
      continue;
    }
    if (comparison === 'cidr') {
      const { list } = parseCidr(String(value));
      preds.push((e) => readAll(e)?.some((t) => inCidr(list, t)) ?? false);
      continue;
    }
    if (comparison === 're') {
      let flags = 0;
      if (has('i')) flags |= RE2JS.CASE_INSENSITIVE;
      if (has('m')) flags |= RE2JS.MULTILINE;
      if (has('s')) flags |= RE2JS.DOTALL;
      let re: RE2JS;
      try {
        re = RE2JS.compile(String(value), flags);
      } catch (err) {
        throw new SigmaValueError('invalid_regex', `regular expression on ${label} does not compile: ${(err as Error).message}`);
      }
      const test = (e: FieldAccess) => readAll(e)?.some((t) => re.matcher(t).find()) ?? false;
      // The literals the expression cannot match without make its trigger, so re2js only runs
      // on events that have one of them (regex-literals.ts).
      const required = ctx.literals && field !== null ? requiredLiterals(String(value), has('i')) : null;
      if (required) {
        const wanted = new Map<number, number>();
        for (const lit of required) wanted.set(ctx.literals!.register(field!, lit), HIT_ANYWHERE);
        withTrigger(test, [{ index: ctx.literals!, field, wanted }]);
      }
      preds.push(test);
      continue;
    }
    // Strings: run the transforms in the order written, then compare.
    let carried: Carried[] = [{ text: String(value) }];
    let literal = false; // after an encoding, wildcards no longer apply
    for (const m of modifiers) {
      if (!TRANSFORMS.has(m)) continue;
      carried = carried.flatMap((v): Carried[] => {
        switch (m) {
          case 'windash': return windashVariants(asText(v)).map((text) => ({ text }));
          case 'expand': {
            // As pySigma: `\%` is a plain percent sign, `%name%` not preceded by a backslash a placeholder.
            const parts = asText(v).split(PLACEHOLDER);
            let out = [''];
            parts.forEach((part, i) => {
              if (i % 2 === 0) {
                const lit = part.replaceAll('\\%', '%');
                out = out.map((t) => t + lit);
                return;
              }
              const replacements = ctx.placeholders?.[part];
              if (!replacements || replacements.length === 0) throw new SigmaValueError('unknown_placeholder', `placeholder %${part}% on ${label} has no values in this workspace`);
              out = out.flatMap((t) => replacements.map((r) => t + r));
            });
            return out.map((text) => ({ text }));
          }
          case 'utf16le': case 'wide': return [{ bytes: Buffer.from(asText(v), 'utf16le') }];
          case 'utf16be': return [{ bytes: utf16be(asText(v)) }];
          case 'utf16': return [{ bytes: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(asText(v), 'utf16le')]) }];
          case 'base64': literal = true; return [{ text: asBytes(v).toString('base64') }];
          case 'base64offset': literal = true; return base64OffsetVariants(asBytes(v)).map((text) => ({ text }));
          default: return [v];
        }
      });
    }
    const strings = carried.map((v) => (literal || 'bytes' in v ? SigmaString.literal(asText(v)) : SigmaString.parse(asText(v))));
    const shaped = strings.map((s) => s.withAnyAround(comparison === 'contains' || comparison === 'endswith' || field === null, comparison === 'contains' || comparison === 'startswith' || field === null));
    // Encoded values compare case-insensitively too, as Sigma backends do (noted in docs/detection.md).
    // Keywords keep their own tests: the event's joined keyword text is long, and V8's substring
    // search over it beats an automaton pass for the few keyword rules an event meets.
    if (!cased && ctx.literals && field !== null) {
      // Literals go through the shared index; anything else keeps its own predicate. Without
      // `all`, the values of the item are alternatives: they join one test (below the loop).
      const group = all ? newLiteralGroup() : (shared ??= newLiteralGroup());
      for (const sh of shaped) {
        const shape = literalShape(sh.mapLiterals((t) => t.toLowerCase()));
        if (shape) {
          const id = ctx.literals.register(field ?? KEYWORDS_KEY, shape.text);
          group.wanted.set(id, (group.wanted.get(id) ?? 0) | shape.bit);
        } else group.others.push(stringPredicate(sh, false));
        group.direct.push(stringPredicate(sh, false));
      }
      if (all) preds.push(literalTest(group, ctx.literals, field, readAllLower));
      continue;
    }
    if (field === null && !cased && !all) {
      const rest = shaped.filter((sh) => {
        const shape = literalShape(sh.mapLiterals((t) => t.toLowerCase()));
        if (shape?.bit !== HIT_ANYWHERE) return true;
        keywordLiterals.push(shape.text);
        return false;
      });
      if (rest.length === 0) continue;
      shaped.splice(0, shaped.length, ...rest);
    }
    const tests = shaped.map((s) => stringPredicate(s, cased));
    const test = tests.length === 1 ? tests[0]! : (t: string) => tests.some((f) => f(t));
    const source = cased ? readAll : readAllLower;
    preds.push((e) => source(e)?.some(test) ?? false);
  }

  if (shared) preds.push(literalTest(shared, ctx.literals!, field, readAllLower));
  if (keywordLiterals.length > 0) preds.push(keywordLiteralTest(keywordLiterals));
  let matcher: Pred;
  if (preds.length === 1) matcher = preds[0]!;
  else if (all) matcher = (e) => preds.every((p) => p(e));
  else matcher = (e) => preds.some((p) => p(e));
  if (negate) {
    const inner = matcher;
    // neq: the field is present and different from every value.
    matcher = field === null ? (e) => !inner(e) : (e) => read(e, field) !== undefined && !inner(e);
  } else if (matcher !== preds[0]) {
    withTrigger(matcher, all ? triggerOfAll(preds) : triggerOfAny(preds));
  }
  // A rough cost, so conditions can test cheap items first (regular expressions and keyword
  // searches over the whole event are the dear ones).
  return withCost(matcher, (comparison === 're' ? 50 : field === null ? 20 : comparison === 'fieldref' ? 3 : 1) * Math.max(1, Math.min(preds.length, 10)));
}

/**
 * The two characters outside ASCII whose lower case holds an ASCII character (U+0130 `İ` → `i̇`,
 * U+212A Kelvin sign → `k`); no other UTF-16 code unit lower-cases to anything with ASCII in it.
 */
const LOWERS_TO_ASCII = ['\u0130', '\u212a'];
const isAscii = (t: string): boolean => {
  for (let i = 0; i < t.length; i++) if (t.charCodeAt(i) >= 128) return false;
  return true;
};

/**
 * Case-insensitive keyword `contains` literals (already lower-cased): does any of them occur in the
 * lower-cased, newline-joined text of the event's values (`keywordTexts(true)`)?
 *
 * When every literal is ASCII without a newline, the same answer comes value by value without
 * building that text: a literal cannot span two values (no newline in it), lower-casing is per
 * character there (the newline separates contexts), and an ASCII literal occurs in a value's lower
 * case exactly when it occurs in the value ignoring ASCII case, unless the value holds one of
 * `LOWERS_TO_ASCII`. So each value is searched with a case-insensitive expression, and a hit (rare)
 * or a value with such a character is decided by the original test on the value's lower case.
 */
function keywordLiteralTest(literals: string[]): ItemMatcher {
  const alternation = literals.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  const any = new RegExp(alternation);
  const joined = (e: FieldAccess) => e.keywordTexts(true).some((t) => any.test(t));
  if (!literals.every((t) => isAscii(t) && !t.includes('\n'))) return joined;
  const folded = new RegExp(alternation, 'i');
  const oneValue = (t: string): boolean => {
    if (t.includes(LOWERS_TO_ASCII[0]!) || t.includes(LOWERS_TO_ASCII[1]!)) return any.test(t.toLowerCase());
    return folded.test(t) && any.test(t.toLowerCase());
  };
  return (e) => (e.someKeywordText ? e.someKeywordText(oneValue) : joined(e));
}

/** Matchers carry an estimated cost; conditions order their operands by it (see condition.ts). */
export function withCost<F extends (e: FieldAccess) => boolean>(fn: F, cost: number): F {
  (fn as F & { cost?: number }).cost = cost;
  return fn;
}

export function costOf(fn: (e: never) => boolean): number {
  return (fn as { cost?: number }).cost ?? 1;
}
