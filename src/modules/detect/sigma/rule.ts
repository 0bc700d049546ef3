import { parseAllDocuments } from 'yaml';
import { SEVERITIES, type Severity } from '../../alerts/types.js';
import { compileCondition, ConditionError, parseCondition } from './condition.js';
import { triggerOfAll, triggerOfAny, withTrigger } from './trigger.js';
import { compileItem, costOf, SigmaValueError, withCost, type CompileContext, type FieldAccess, type ItemMatcher } from './values.js';

/**
 * Sigma documents (spec v2): detection rules, correlation rules and meta filters, parsed from
 * YAML (one file may hold several documents) and compiled into matchers. Every problem is a
 * `SigmaRuleError` with a stable reason, so an import reports each rejected rule on its own.
 */

export class SigmaRuleError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

export interface Logsource {
  product?: string;
  category?: string;
  service?: string;
}

interface Common {
  /** The rule's `id` (UUID in SigmaHQ), or null. */
  id: string | null;
  /** The rule's `name` (used by correlations and filters), or null. */
  name: string | null;
  title: string;
  description: string;
  status: string | null;
  level: Severity;
  tags: string[];
}

export interface SigmaDetectionRule extends Common {
  kind: 'rule';
  logsource: Logsource;
  /** Whether the event matches the detection (logsource routing is the engine's job). */
  match: (event: FieldAccess) => boolean;
  /** Fields the rule reads. */
  fields: string[];
}

export type CorrelationType = 'event_count' | 'value_count' | 'temporal' | 'temporal_ordered';
export interface CountCondition {
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
  eq?: number;
}

export interface SigmaCorrelationRule extends Common {
  kind: 'correlation';
  type: CorrelationType;
  /** Referenced rules, by id or name. */
  rules: string[];
  groupBy: string[];
  timespanMs: number;
  condition: CountCondition;
  /** value_count: the field whose distinct values are counted. */
  field: string | null;
  /** alias → (rule id or name → field). */
  aliases: Record<string, Record<string, string>>;
  /** Whether the referenced rules also alert on their own. */
  generate: boolean;
}

export interface SigmaFilterRule extends Common {
  kind: 'filter';
  logsource: Logsource;
  /** Rules (by id or name) the filter applies to. */
  rules: string[];
  match: (event: FieldAccess) => boolean;
}

export type SigmaDocument = SigmaDetectionRule | SigmaCorrelationRule | SigmaFilterRule;

export type ParsedDocument =
  | { ok: true; rule: SigmaDocument; index: number }
  | { ok: false; reason: string; message: string; index: number; title?: string; id?: string };

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);

function common(doc: Record<string, unknown>): Common {
  const title = str(doc.title);
  if (!title || !title.trim()) throw new SigmaRuleError('missing_title', 'the rule has no title');
  if (title.length > 256) throw new SigmaRuleError('invalid_title', 'the title is longer than 256 characters');
  const levelText = doc.level === undefined ? 'medium' : str(doc.level)?.toLowerCase();
  if (!levelText || !(SEVERITIES as readonly string[]).includes(levelText)) throw new SigmaRuleError('invalid_level', `level "${String(doc.level)}" is not one of ${SEVERITIES.join(', ')}`);
  const tags = doc.tags === undefined ? [] : Array.isArray(doc.tags) ? doc.tags.map((t) => String(t).toLowerCase()) : null;
  if (!tags) throw new SigmaRuleError('invalid_tags', 'tags must be a list');
  return {
    id: str(doc.id),
    name: str(doc.name),
    title: title.trim(),
    description: str(doc.description) ?? '',
    status: str(doc.status),
    level: levelText as Severity,
    tags,
  };
}

function logsource(doc: Record<string, unknown>): Logsource {
  const ls = doc.logsource;
  if (!isObject(ls)) throw new SigmaRuleError('missing_logsource', 'the rule has no logsource');
  const out: Logsource = {};
  for (const key of ['product', 'category', 'service'] as const) {
    const v = str(ls[key]);
    if (v) out[key] = v.toLowerCase();
  }
  if (!out.product && !out.category && !out.service) throw new SigmaRuleError('missing_logsource', 'the logsource names no product, category or service');
  return out;
}

function splitKey(key: string): { field: string | null; modifiers: string[] } {
  const [field, ...modifiers] = key.split('|');
  return { field: field ? field : null, modifiers: modifiers.map((m) => m.toLowerCase()) };
}

/** Compiles one search identifier's definition. */
function compileSearch(name: string, def: unknown, ctx: CompileContext, fields: Set<string>): ItemMatcher {
  const mapMatcher = (map: Record<string, unknown>): ItemMatcher => {
    const items = Object.entries(map).map(([key, values]) => {
      const { field, modifiers } = splitKey(key);
      if (field) fields.add(field);
      return compileItem(field, modifiers, values, ctx);
    });
    if (items.length === 0) return () => true;
    if (items.length === 1) return items[0]!;
    // AND of items: cheapest first, so the dear ones (regular expressions) rarely run.
    items.sort((a, b) => costOf(a) - costOf(b));
    const all = withCost((e: FieldAccess) => {
      for (const item of items) if (!item(e)) return false;
      return true;
    }, items.reduce((n, i) => n + costOf(i), 0));
    return withTrigger(all, triggerOfAll(items));
  };
  if (isObject(def)) return mapMatcher(def);
  if (Array.isArray(def)) {
    if (def.length === 0) throw new SigmaRuleError('invalid_detection', `search "${name}" is an empty list`);
    if (def.every(isObject)) {
      const alternatives = (def as Record<string, unknown>[]).map(mapMatcher).sort((a, b) => costOf(a) - costOf(b));
      const any = withCost((e: FieldAccess) => alternatives.some((a) => a(e)), alternatives.reduce((n, a) => n + costOf(a), 0));
      return withTrigger(any, triggerOfAny(alternatives));
    }
    if (def.some(isObject) || def.some(Array.isArray)) throw new SigmaRuleError('invalid_detection', `search "${name}" mixes maps and plain values`);
    return compileItem(null, [], def, ctx);
  }
  if (typeof def === 'string' || typeof def === 'number') return compileItem(null, [], def, ctx);
  throw new SigmaRuleError('invalid_detection', `search "${name}" must be a map, a list or a value`);
}

/** Compiles a `detection` section (detection rules and filters alike). */
function compileDetection(detection: unknown, ctx: CompileContext): { match: (e: FieldAccess) => boolean; fields: string[] } {
  if (!isObject(detection)) throw new SigmaRuleError('missing_detection', 'the rule has no detection section');
  if (detection.timeframe !== undefined) throw new SigmaRuleError('unsupported_aggregation', 'timeframe and aggregations in conditions are Sigma v1; use a correlation rule');
  const conditionRaw = detection.condition;
  const conditions = Array.isArray(conditionRaw) ? conditionRaw.map(str) : [str(conditionRaw)];
  if (conditions.length === 0 || conditions.some((c) => !c || !c.trim())) throw new SigmaRuleError('missing_condition', 'the detection has no condition');
  const names = Object.keys(detection).filter((k) => k !== 'condition');
  if (names.length === 0) throw new SigmaRuleError('invalid_detection', 'the detection defines no search identifier');
  const fields = new Set<string>();
  const searches = new Map<string, ItemMatcher>();
  for (const name of names) searches.set(name, compileSearch(name, detection[name], ctx, fields));
  const compiled = conditions.map((text) => {
    if (/\|\s*(count|min|max|avg|sum|near)\b/i.test(text!)) throw new SigmaRuleError('unsupported_aggregation', 'aggregations in conditions (`| count() …`) are Sigma v1; use a correlation rule');
    return compileCondition(parseCondition(text!, names), searches);
  });
  const match = compiled.length === 1 ? compiled[0]! : withTrigger((e: FieldAccess) => compiled.some((c) => c(e)), triggerOfAny(compiled));
  return { match, fields: [...fields] };
}

const TIMESPAN = /^(\d+)([smhdwMy])$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 };

export function parseTimespan(text: unknown): number {
  const m = TIMESPAN.exec(String(text ?? '').trim());
  if (!m) throw new SigmaRuleError('invalid_timespan', `timespan "${String(text)}" is not a number followed by s, m, h or d`);
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  if (ms <= 0 || ms > 31 * 86_400_000) throw new SigmaRuleError('invalid_timespan', 'timespan must be between 1 second and 31 days');
  return ms;
}

function parseCorrelation(doc: Record<string, unknown>): SigmaCorrelationRule {
  const base = common(doc);
  const c = doc.correlation;
  if (!isObject(c)) throw new SigmaRuleError('invalid_correlation', 'correlation must be a map');
  const type = str(c.type);
  if (type !== 'event_count' && type !== 'value_count' && type !== 'temporal' && type !== 'temporal_ordered') {
    throw new SigmaRuleError('unsupported_correlation', `correlation type "${String(c.type)}" is not supported (event_count, value_count, temporal, temporal_ordered)`);
  }
  const rules = Array.isArray(c.rules) ? c.rules.map(String) : typeof c.rules === 'string' ? [c.rules] : [];
  if (rules.length === 0) throw new SigmaRuleError('invalid_correlation', 'correlation.rules names no rule');
  const groupBy = c['group-by'] === undefined ? [] : Array.isArray(c['group-by']) ? c['group-by'].map(String) : [String(c['group-by'])];
  const timespanMs = parseTimespan(c.timespan ?? c.timeframe);
  let condition: CountCondition = {};
  let field: string | null = null;
  if (c.condition === undefined) {
    if (type === 'event_count' || type === 'value_count') throw new SigmaRuleError('invalid_correlation', `${type} needs a condition`);
    condition = { gte: rules.length };
  } else if (isObject(c.condition)) {
    for (const [k, v] of Object.entries(c.condition)) {
      if (k === 'field') field = String(v);
      else if (['gt', 'gte', 'lt', 'lte', 'eq'].includes(k) && Number.isFinite(Number(v))) condition[k as keyof CountCondition] = Number(v);
      else throw new SigmaRuleError('invalid_correlation', `condition "${k}: ${String(v)}" is not one of gt, gte, lt, lte, eq with a number`);
    }
    if (Object.keys(condition).length === 0) throw new SigmaRuleError('invalid_correlation', 'the condition has no comparison');
  } else {
    throw new SigmaRuleError('invalid_correlation', 'the correlation condition must be a map such as {gte: 10}');
  }
  if (type === 'value_count' && !field) throw new SigmaRuleError('invalid_correlation', 'value_count needs condition.field');
  const aliases: Record<string, Record<string, string>> = {};
  if (c.aliases !== undefined) {
    if (!isObject(c.aliases)) throw new SigmaRuleError('invalid_correlation', 'aliases must be a map');
    for (const [alias, perRule] of Object.entries(c.aliases)) {
      if (!isObject(perRule)) throw new SigmaRuleError('invalid_correlation', `alias "${alias}" must map rule names to fields`);
      aliases[alias] = Object.fromEntries(Object.entries(perRule).map(([k, v]) => [k, String(v)]));
    }
  }
  return { ...base, kind: 'correlation', type, rules, groupBy, timespanMs, condition, field, aliases, generate: c.generate === true || doc.generate === true };
}

function parseFilter(doc: Record<string, unknown>, ctx: CompileContext): SigmaFilterRule {
  const base = common(doc);
  const f = doc.filter;
  if (!isObject(f)) throw new SigmaRuleError('invalid_filter', 'filter must be a map');
  const rules = Array.isArray(f.rules) ? f.rules.map(String) : typeof f.rules === 'string' ? [f.rules] : [];
  if (rules.length === 0) throw new SigmaRuleError('invalid_filter', 'filter.rules names no rule');
  const { rules: _rules, ...detection } = f;
  const { match } = compileDetection(detection, ctx);
  return { ...base, kind: 'filter', logsource: logsource(doc), rules, match };
}

/** Parses one document (already loaded from YAML). */
export function parseSigmaDocument(doc: unknown, ctx: CompileContext = {}): SigmaDocument {
  if (!isObject(doc)) throw new SigmaRuleError('invalid_yaml', 'a Sigma document must be a YAML map');
  try {
    if (doc.correlation !== undefined) return parseCorrelation(doc);
    if (doc.filter !== undefined) return parseFilter(doc, ctx);
    const base = common(doc);
    const ls = logsource(doc);
    const { match, fields } = compileDetection(doc.detection, ctx);
    return { ...base, kind: 'rule', logsource: ls, match, fields };
  } catch (err) {
    if (err instanceof SigmaRuleError) throw err;
    if (err instanceof SigmaValueError) throw new SigmaRuleError(err.reason, err.message);
    if (err instanceof ConditionError) throw new SigmaRuleError(err.reason, `condition: ${err.message}`);
    throw err;
  }
}

/** Parses a YAML text of one or more Sigma documents; each document succeeds or fails alone. */
export function parseSigmaYaml(text: string, ctx: CompileContext = {}): ParsedDocument[] {
  let docs;
  try {
    docs = parseAllDocuments(text, { uniqueKeys: false });
  } catch (err) {
    return [{ ok: false, reason: 'invalid_yaml', message: (err as Error).message, index: 0 }];
  }
  const list = Array.isArray(docs) ? docs : [docs];
  const out: ParsedDocument[] = [];
  list.forEach((d, index) => {
    if (d.errors.length > 0) {
      out.push({ ok: false, reason: 'invalid_yaml', message: d.errors[0]!.message.split('\n')[0]!, index });
      return;
    }
    const value: unknown = d.toJS({ maxAliasCount: 50 });
    if (value === null || value === undefined) return; // an empty document between separators
    try {
      out.push({ ok: true, rule: parseSigmaDocument(value, ctx), index });
    } catch (err) {
      const meta = isObject(value) ? { title: str(value.title) ?? undefined, id: str(value.id) ?? undefined } : {};
      if (err instanceof SigmaRuleError) out.push({ ok: false, reason: err.reason, message: err.message, index, ...meta });
      else out.push({ ok: false, reason: 'invalid_rule', message: (err as Error).message, index, ...meta });
    }
  });
  return out;
}
