import type { Severity } from '../alerts/types.js';
import { alternativesFor, EventView, type LogsourceAlternative, type Mapping } from './mapping.js';
import { LiteralIndex } from './sigma/literals.js';
import { triggerOf, withTrigger, type Trigger } from './sigma/trigger.js';
import type { CompileContext } from './sigma/values.js';
import type { SigmaCorrelationRule, SigmaDetectionRule, SigmaDocument, SigmaFilterRule } from './sigma/rule.js';

/** A rule as the engine runs it: its stored key, the compiled Sigma document and overrides. */
export interface EngineRule<D extends SigmaDocument = SigmaDocument> {
  /** The stored rule's id (or any unique key in tests and benchmarks). */
  key: string;
  doc: D;
  /** Severity after the workspace's override. */
  severity: Severity;
}

interface Route {
  rule: EngineRule<SigmaDetectionRule>;
  alternative: LogsourceAlternative;
  /** The alternative's field renames, or null when it has none. */
  renames: Record<string, string> | null;
}

/** Routes sharing the conditions left after the index lookup, checked once for all of them. */
interface RouteGroup {
  conditions: Array<{ field: string; accepted: Set<string>; any: boolean }>;
  routes: Route[];
  /** The inverted index of the routes' triggers, built on first use (null again when routes are added). */
  triggers: GroupTriggers | null;
}

/**
 * Which routes of a group an event's literals select (see sigma/trigger.ts): per field (and
 * field renames) the routes whose trigger wants a literal, so an event costs one lookup per
 * literal found instead of one evaluation per routed rule.
 */
interface GroupTriggers {
  fields: Array<{ renames: Record<string, string> | null; field: string | null; wanted: Map<number, Array<{ route: number; bits: number }>> }>;
  /** route index → whether it is evaluated whatever literals the event has (no usable trigger) */
  always: boolean[];
  /** route index → the event stamp that selected it */
  marks: Uint32Array;
}

function groupKey(rest: Record<string, string[]>): string {
  return JSON.stringify(Object.entries(rest).sort((a, b) => a[0].localeCompare(b[0])).map(([f, v]) => [f, [...v].sort()]));
}

export interface Match {
  rule: EngineRule<SigmaDetectionRule>;
  /** The view through which the rule matched (field renames of its logsource applied). */
  view: EventView;
}

/**
 * Runs detection rules on events. Rules are routed by logsource: each rule is indexed under the
 * channels and event ids its logsource covers, so an event is only tested against rules that can
 * apply to it. Meta filters are ANDed into the rules they name. Correlation rules are kept here
 * for lookup; their windows live in `correlate.ts`.
 */
export class DetectionEngine {
  /** channel → event id (or `*`) → route groups */
  private readonly byChannel = new Map<string, Map<string, Map<string, RouteGroup>>>();
  /** route groups without a channel condition, checked on every event */
  private readonly generic = new Map<string, RouteGroup>();
  private readonly rules: EngineRule<SigmaDetectionRule>[] = [];
  private readonly correlations: EngineRule<SigmaCorrelationRule>[] = [];
  /** rule id or name → correlations that reference it */
  private readonly referencedBy = new Map<string, EngineRule<SigmaCorrelationRule>[]>();
  /** Rules loaded whose logsource has no mapping (they run on `logsource.*`-labelled events). */
  readonly unmapped: string[] = [];

  /** Literals of every loaded rule, matched all at once per field (compile rules with `compileContext`). */
  readonly literals = new LiteralIndex();
  /** Counts events, so route marks need no clearing between events. */
  private stamp = 0;

  constructor(readonly mapping: Mapping) {}

  /** What rules loaded into this engine are compiled with. */
  compileContext(ctx: CompileContext = {}): CompileContext {
    return { ...ctx, literals: this.literals };
  }

  get size(): { rules: number; correlations: number } {
    return { rules: this.rules.length, correlations: this.correlations.length };
  }

  /** Loads rules, filters and correlations; filters apply to rules loaded in the same call or before. */
  load(entries: EngineRule[]): void {
    const filters = entries.filter((e): e is EngineRule<SigmaFilterRule> => e.doc.kind === 'filter');
    for (const entry of entries) {
      if (entry.doc.kind === 'rule') this.addRule(entry as EngineRule<SigmaDetectionRule>, filters);
      else if (entry.doc.kind === 'correlation') this.addCorrelation(entry as EngineRule<SigmaCorrelationRule>);
    }
    // Automata and trigger indexes now, so the first events do not pay for them.
    this.literals.prepare();
    const index = (groups: Map<string, RouteGroup>) => { for (const g of groups.values()) g.triggers ??= this.indexTriggers(g); };
    index(this.generic);
    for (const byId of this.byChannel.values()) for (const groups of byId.values()) index(groups);
  }

  private addRule(entry: EngineRule<SigmaDetectionRule>, filters: EngineRule<SigmaFilterRule>[]): void {
    const doc = entry.doc;
    const applying = filters.filter((f) => f.doc.rules.some((r) => r === doc.id || (doc.name !== null && r === doc.name) || r === entry.key));
    let rule = entry;
    if (applying.length > 0) {
      const base = doc.match;
      const filterMatches = applying.map((f) => f.doc.match);
      // The base rule's trigger still holds for the rule with its filters ANDed in.
      rule = { ...entry, doc: { ...doc, match: withTrigger((e) => base(e) && filterMatches.every((m) => m(e)), triggerOf(base)) } };
    }
    this.rules.push(rule);
    const { alternatives, mapped } = alternativesFor(this.mapping, doc.logsource);
    if (!mapped) this.unmapped.push(entry.key);
    for (const alternative of alternatives) {
      const { Channel: channels, EventID: eventIds, ...rest } = alternative.when;
      const route: Route = { rule, alternative, renames: Object.keys(alternative.fields).length > 0 ? alternative.fields : null };
      if (!channels || channels.includes('*')) {
        const conditions = { ...rest, ...(eventIds ? { EventID: eventIds } : {}), ...(channels ? { Channel: ['*'] } : {}) };
        addTo(this.generic, conditions, route);
        continue;
      }
      for (const channel of channels) {
        let byId = this.byChannel.get(channel);
        if (!byId) this.byChannel.set(channel, (byId = new Map()));
        for (const id of eventIds ?? ['*']) {
          let groups = byId.get(id);
          if (!groups) byId.set(id, (groups = new Map()));
          addTo(groups, rest, route);
        }
      }
    }
  }

  private addCorrelation(entry: EngineRule<SigmaCorrelationRule>): void {
    this.correlations.push(entry);
    for (const ref of entry.doc.rules) {
      let list = this.referencedBy.get(ref);
      if (!list) this.referencedBy.set(ref, (list = []));
      list.push(entry);
    }
  }

  /** Correlations that count matches of a rule (by its id, name or key). */
  correlationsOf(doc: { id: string | null; name: string | null }, key: string): EngineRule<SigmaCorrelationRule>[] {
    const out = new Set<EngineRule<SigmaCorrelationRule>>();
    for (const ref of [doc.id, doc.name, key]) if (ref) for (const c of this.referencedBy.get(ref) ?? []) out.add(c);
    return [...out];
  }

  /** Whether a rule alerts on its own: not when it only feeds correlations that do not `generate` it. */
  alertsOnItsOwn(rule: EngineRule<SigmaDetectionRule>): boolean {
    const cs = this.correlationsOf(rule.doc, rule.key);
    return cs.length === 0 || cs.some((c) => c.doc.generate);
  }

  /** Detection rules that match one event (a flat document as the store keeps it). */
  match(doc: Record<string, unknown>): Match[] {
    const view = new EventView(doc, this.mapping, null, this.literals);
    const matches: Match[] = [];
    if (++this.stamp === 0xffffffff) this.resetMarks();
    const channel = view.lowerTexts('Channel')?.[0];
    if (channel !== undefined) {
      const byId = this.byChannel.get(channel);
      if (byId) {
        const id = view.texts('EventID')?.[0];
        if (id !== undefined) {
          const groups = byId.get(id);
          if (groups) this.run(view, groups, matches);
        }
        const any = byId.get('*');
        if (any) this.run(view, any, matches);
      }
    }
    this.run(view, this.generic, matches);
    return matches;
  }

  /** Evaluates the route groups an event reaches, adding the rules that match (each rule once). */
  private run(view: EventView, groups: Map<string, RouteGroup>, matches: Match[]): void {
    const stamp = this.stamp;
    for (const group of groups.values()) {
      if (!satisfies(view, group)) continue;
      const t = (group.triggers ??= this.indexTriggers(group));
      const { always, marks } = t;
      for (const f of t.fields) {
        const hits = view.withRenames(f.renames).literalHits(f.field);
        if (hits.size === 0) continue;
        if (hits.size <= f.wanted.size) {
          for (const [id, bits] of hits) {
            const wanting = f.wanted.get(id);
            if (wanting) for (const w of wanting) if ((w.bits & bits) !== 0) marks[w.route] = stamp;
          }
        } else {
          for (const [id, wanting] of f.wanted) {
            const bits = hits.get(id);
            if (bits !== undefined) for (const w of wanting) if ((w.bits & bits) !== 0) marks[w.route] = stamp;
          }
        }
      }
      // Routes in load order, as before triggers: the first alternative that matches names the view.
      const routes = group.routes;
      for (let i = 0; i < routes.length; i++) {
        if (!always[i] && marks[i] !== stamp) continue;
        const route = routes[i]!;
        if (matches.length > 0 && alreadyMatched(matches, route.rule.key)) continue;
        const v = view.withRenames(route.renames);
        if (route.rule.doc.match(v)) matches.push({ rule: route.rule, view: v });
      }
    }
  }

  /** The inverted index of a group's route triggers (only triggers over this engine's literals count). */
  private indexTriggers(group: RouteGroup): GroupTriggers {
    const fields = new Map<Record<string, string> | null, Map<string | null, Map<number, Array<{ route: number; bits: number }>>>>();
    const always = group.routes.map((route, i) => {
      const trigger: Trigger | null = triggerOf(route.rule.doc.match);
      if (!trigger || trigger.some((p) => p.index !== this.literals)) return true;
      let byField = fields.get(route.renames);
      if (!byField) fields.set(route.renames, (byField = new Map()));
      for (const part of trigger) {
        let wanted = byField.get(part.field);
        if (!wanted) byField.set(part.field, (wanted = new Map()));
        for (const [id, bits] of part.wanted) {
          let list = wanted.get(id);
          if (!list) wanted.set(id, (list = []));
          list.push({ route: i, bits });
        }
      }
      return false;
    });
    const flat: GroupTriggers['fields'] = [];
    for (const [renames, byField] of fields) for (const [field, wanted] of byField) flat.push({ renames, field, wanted });
    return { fields: flat, always, marks: new Uint32Array(group.routes.length) };
  }

  private resetMarks(): void {
    this.stamp = 1;
    const clear = (groups: Map<string, RouteGroup>) => { for (const g of groups.values()) g.triggers?.marks.fill(0); };
    clear(this.generic);
    for (const byId of this.byChannel.values()) for (const groups of byId.values()) clear(groups);
  }
}

function addTo(groups: Map<string, RouteGroup>, rest: Record<string, string[]>, route: Route): void {
  const key = groupKey(rest);
  let group = groups.get(key);
  if (!group) {
    const conditions = Object.entries(rest).map(([field, accepted]) => ({ field, accepted: new Set(accepted), any: accepted.includes('*') }));
    groups.set(key, (group = { conditions, routes: [], triggers: null }));
  }
  group.routes.push(route);
  group.triggers = null;
}

/** Whether a rule (by key) is among an event's matches so far (a handful at most). */
function alreadyMatched(matches: Match[], key: string): boolean {
  for (let i = 0; i < matches.length; i++) if (matches[i]!.rule.key === key) return true;
  return false;
}

function satisfies(view: EventView, group: RouteGroup): boolean {
  for (const c of group.conditions) {
    const values = view.lowerTexts(c.field);
    if (!values) return false;
    if (c.any) continue;
    let ok = false;
    for (const v of values) if (c.accepted.has(v)) ok = true;
    if (!ok) return false;
  }
  return true;
}
