import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { Logsource } from './sigma/rule.js';
import type { LiteralIndex } from './sigma/literals.js';
import { textForms, type FieldAccess } from './sigma/values.js';

const EMPTY_HITS: Map<number, number> = new Map();
/** Texts at least this long are worth checking for a repeat before a keyword search. */
const LONG_TEXT = 64;

/** One field of an event view: its value, then its text forms and literal hits as they are needed. */
class FieldEntry {
  texts: string[] | null | undefined = undefined;
  lower: string[] | null | undefined = undefined;
  hits: Map<number, number> | undefined = undefined;
  constructor(readonly value: unknown) {}
}

function addKeyword(keywords: Set<string>, x: unknown): void {
  if (typeof x === 'string') keywords.add(x);
  else if (typeof x === 'number' || typeof x === 'boolean') keywords.add(String(x));
}

/**
 * Logsource routing and field mapping, as data (`logsources.yml`, documented in
 * docs/detection.md): which events a rule's logsource covers, and where a Sigma field name is
 * found in the event.
 */

/** One way an event can belong to a logsource: field values that must all hold, and field renames. */
export interface LogsourceAlternative {
  /** Field → accepted values (lower-cased text; `*` = present with any value). */
  when: Record<string, string[]>;
  /** Sigma field name → event field name, for the rules routed through this alternative. */
  fields: Record<string, string>;
}

export interface Mapping {
  fieldPrefixes: string[];
  fieldAliases: Record<string, string[]>;
  logsources: Record<string, LogsourceAlternative[]>;
}

const DEFAULT_FILE = new URL('./logsources.yml', import.meta.url);

function readAlternatives(key: string, raw: unknown): LogsourceAlternative[] {
  if (!Array.isArray(raw)) throw new Error(`logsource "${key}" must be a list of alternatives`);
  return raw.map((alt) => {
    if (alt === null || typeof alt !== 'object') throw new Error(`logsource "${key}" has an alternative that is not a map`);
    const { fields, ...when } = alt as Record<string, unknown>;
    return {
      when: Object.fromEntries(Object.entries(when).map(([f, v]) => [f, (Array.isArray(v) ? v : [v]).map((x) => String(x).toLowerCase())])),
      fields: (fields ?? {}) as Record<string, string>,
    };
  });
}

function readMapping(text: string): Partial<Mapping> {
  const raw = (parse(text) ?? {}) as Record<string, unknown>;
  const out: Partial<Mapping> = {};
  if (raw.fieldPrefixes) out.fieldPrefixes = (raw.fieldPrefixes as unknown[]).map(String);
  if (raw.fieldAliases) out.fieldAliases = raw.fieldAliases as Record<string, string[]>;
  if (raw.logsources) {
    out.logsources = {};
    for (const [key, alts] of Object.entries(raw.logsources as Record<string, unknown>)) out.logsources[key.toLowerCase()] = readAlternatives(key, alts);
  }
  return out;
}

/** The built-in mapping, with an optional file whose entries add to it or replace its entries. */
export function loadMapping(overrideFile?: string): Mapping {
  const base = readMapping(readFileSync(DEFAULT_FILE, 'utf8')) as Mapping;
  if (!overrideFile) return base;
  const extra = readMapping(readFileSync(overrideFile, 'utf8'));
  return {
    fieldPrefixes: extra.fieldPrefixes ?? base.fieldPrefixes,
    fieldAliases: { ...base.fieldAliases, ...extra.fieldAliases },
    logsources: { ...base.logsources, ...extra.logsources },
  };
}

/**
 * The alternatives a logsource covers. Category and service combine (both must hold); an
 * unknown logsource falls back to events labelled `logsource.*` with the same values.
 */
export function alternativesFor(mapping: Mapping, ls: Logsource): { alternatives: LogsourceAlternative[]; mapped: boolean } {
  const product = ls.product ?? '';
  const lookup = (part: string | undefined) => (part ? mapping.logsources[`${product}/${part}`] ?? (product ? undefined : mapping.logsources[part]) : undefined);
  const byCategory = lookup(ls.category);
  const byService = lookup(ls.service);
  const byProduct = !ls.category && !ls.service && product ? mapping.logsources[product] : undefined;
  let alternatives: LogsourceAlternative[] | undefined;
  if (byCategory && byService) {
    alternatives = byCategory.flatMap((a) => byService.flatMap((b) => {
      for (const [f, v] of Object.entries(b.when)) if (a.when[f] && !a.when[f]!.some((x) => v.includes(x) || x === '*' || v.includes('*'))) return [];
      return [{ when: { ...b.when, ...a.when }, fields: { ...b.fields, ...a.fields } }];
    }));
  } else if ((ls.category && !byCategory) || (ls.service && !byService)) {
    alternatives = undefined;
  } else {
    alternatives = byCategory ?? byService ?? byProduct;
  }
  if (alternatives) return { alternatives, mapped: true };
  const when: Record<string, string[]> = {};
  if (ls.product) when['logsource.product'] = [ls.product];
  if (ls.category) when['logsource.category'] = [ls.category];
  if (ls.service) when['logsource.service'] = [ls.service];
  return { alternatives: [{ when, fields: {} }], mapped: false };
}

/**
 * The event as Sigma rules see it: a flat document (original fields and normalised ones) with
 * Sigma names resolved through renames, exact names, aliases and prefixes, and text forms
 * cached so a thousand rules reading `CommandLine` lower-case it once.
 */
export class EventView implements FieldAccess {
  /** Sigma field name → its value and the forms derived from it, one entry per field read. */
  private readonly fields = new Map<string, FieldEntry>();
  private renamedViews: Map<Record<string, string>, EventView> | null = null;
  /** What does not depend on renames, shared with the renamed views of the same event. */
  private shared: { prefixed: Map<string, unknown> | null; keywords: string[] | null; keywordsLower: string[] | null; keywordHits: Map<number, number> | null } = { prefixed: null, keywords: null, keywordsLower: null, keywordHits: null };

  /**
   * Fields under the mapping's prefixes by their bare name (`winlog.event_data.Image` → `Image`),
   * the earlier prefix winning: one pass over the event's keys instead of a lookup per prefix
   * for every field a rule reads.
   */
  private prefixedFields(): Map<string, unknown> {
    if (this.shared.prefixed) return this.shared.prefixed;
    const fields = new Map<string, unknown>();
    const rank = new Map<string, number>();
    const prefixes = this.mapping.fieldPrefixes;
    for (const key in this.doc) {
      for (let i = 0; i < prefixes.length; i++) {
        const prefix = prefixes[i]!;
        if (!key.startsWith(prefix)) continue;
        const name = key.slice(prefix.length);
        if ((rank.get(name) ?? Infinity) > i && this.doc[key] !== undefined) {
          fields.set(name, this.doc[key]);
          rank.set(name, i);
        }
        break;
      }
    }
    this.shared.prefixed = fields;
    return fields;
  }

  constructor(readonly doc: Record<string, unknown>, private readonly mapping: Mapping, private readonly renames: Record<string, string> | null = null, private readonly literals: LiteralIndex | null = null) {}

  /** Literals of the engine's index found in a field (null: keywords), computed once per field and event. */
  literalHits(field: string | null): Map<number, number> {
    if (!this.literals) throw new Error('this view has no literal index');
    if (field === null) return (this.shared.keywordHits ??= this.literals.scan('', this.keywordTexts(true)));
    const entry = this.entry(field);
    if (entry.hits === undefined) {
      const texts = this.lowerOf(entry);
      entry.hits = texts ? this.literals.scan(field, texts) : EMPTY_HITS;
    }
    return entry.hits;
  }

  /** The same event seen through an alternative's field renames. */
  withRenames(renames: Record<string, string> | null): EventView {
    if (renames === null) return this;
    this.renamedViews ??= new Map();
    let view = this.renamedViews.get(renames);
    if (!view) {
      view = new EventView(this.doc, this.mapping, renames, this.literals);
      view.shared = this.shared;
      this.renamedViews.set(renames, view);
    }
    return view;
  }

  private entry(field: string): FieldEntry {
    let entry = this.fields.get(field);
    if (entry === undefined) this.fields.set(field, (entry = new FieldEntry(this.resolve(field))));
    return entry;
  }

  get(field: string): unknown {
    return this.entry(field).value;
  }

  private resolve(field: string): unknown {
    const doc = this.doc;
    const renamed = this.renames?.[field];
    if (renamed !== undefined && doc[renamed] !== undefined) return doc[renamed];
    if (renamed !== undefined) return this.resolve(renamed);
    let v = doc[field];
    if (v !== undefined) return v;
    v = this.prefixedFields().get(field);
    if (v !== undefined) return v;
    const aliases = this.mapping.fieldAliases[field];
    if (aliases) {
      for (const alias of aliases) {
        v = doc[alias];
        if (v !== undefined) return v;
      }
    }
    return undefined;
  }

  texts(field: string): string[] | null {
    const entry = this.entry(field);
    return entry.texts === undefined ? (entry.texts = textForms(entry.value)) : entry.texts;
  }

  lowerTexts(field: string): string[] | null {
    return this.lowerOf(this.entry(field));
  }

  private lowerOf(entry: FieldEntry): string[] | null {
    if (entry.lower === undefined) {
      const raw = entry.texts === undefined ? (entry.texts = textForms(entry.value)) : entry.texts;
      entry.lower = raw ? raw.map((s) => s.toLowerCase()) : null;
    }
    return entry.lower;
  }

  keywordTexts(lower: boolean): string[] {
    const shared = this.shared;
    if (!shared.keywords) {
      // Every value of the event, numbers and booleans by their text (Sigma values are strings);
      // each distinct text once (normalisation copies the message, for one).
      const keywords = new Set<string>();
      const doc = this.doc;
      for (const k in doc) {
        const v = doc[k];
        if (typeof v === 'string') keywords.add(v);
        else if (Array.isArray(v)) for (const x of v as unknown[]) addKeyword(keywords, x);
        else addKeyword(keywords, v);
      }
      shared.keywords = [...keywords];
    }
    if (!lower) return shared.keywords;
    // Case-insensitive keywords (nearly all) are contains-tests: one lower-cased text of all
    // values, newline-separated, takes one scan per keyword instead of one per value. A keyword
    // with an inner wildcard could match across two values; Sigma keywords practically never
    // have one (docs/detection.md).
    shared.keywordsLower ??= [shared.keywords.join('\n').toLowerCase()];
    return shared.keywordsLower;
  }

  /**
   * Whether `test` holds for any keyword value of the event: the values `keywordTexts(false)`
   * lists (strings, and numbers and booleans by their text), read straight from the document,
   * so no joined or lower-cased copy of the event is built. A value may be tested twice.
   */
  someKeywordText(test: (text: string) => boolean): boolean {
    const doc = this.doc;
    // Normalisation copies long values (the message, for one): each long text is tested once.
    let long: string[] | null = null;
    for (const k in doc) {
      const v = doc[k];
      if (typeof v === 'string') {
        if (v.length >= LONG_TEXT) {
          if (long === null) long = [v];
          else if (long.includes(v)) continue;
          else long.push(v);
        }
        if (test(v)) return true;
      } else if (Array.isArray(v)) {
        for (const x of v as unknown[]) {
          if (typeof x === 'string') {
            if (test(x)) return true;
          } else if ((typeof x === 'number' || typeof x === 'boolean') && test(String(x))) return true;
        }
      } else if ((typeof v === 'number' || typeof v === 'boolean') && test(String(v))) return true;
    }
    return false;
  }

  /** Whether the event satisfies an alternative's field conditions. */
  satisfies(when: Record<string, string[]>): boolean {
    for (const [field, accepted] of Object.entries(when)) {
      const values = this.lowerTexts(field);
      if (!values) return false;
      if (accepted.includes('*')) continue;
      if (!values.some((v) => accepted.includes(v))) return false;
    }
    return true;
  }
}
