import type { LiteralIndex } from './literals.js';

/**
 * Triggers: a necessary condition of a compiled matcher, in terms of the shared literal index.
 *
 * A matcher with trigger `[p1, p2, …]` can only hold for an event when, for at least one part,
 * one of the part's literals was found in the part's field where the part wants it (`wanted`:
 * literal id → HIT_* bits, any of them will do). The engine uses this the other way round: per
 * event, the literals found in a field select the few rules worth evaluating, instead of
 * evaluating the ~1,200 rules routed to a process-creation event one by one. A matcher without
 * a trigger (null: a negation, a regular expression, a keyword search, …) is always evaluated.
 *
 * The rule's own evaluation is unchanged, so a trigger only has to be necessary, never
 * sufficient: whatever it lets through is still decided by the compiled matcher.
 */
export interface TriggerPart {
  /** The index the literal ids belong to (a rule may be compiled for another engine). */
  index: LiteralIndex;
  /** Sigma field name, as registered in the index (null: keywords). */
  field: string | null;
  /** literal id → where it must occur (bits; any of them will do) */
  wanted: Map<number, number>;
}

export type Trigger = TriggerPart[];

type WithTrigger = { trigger?: Trigger | null };

export function withTrigger<F extends (e: never) => boolean>(fn: F, trigger: Trigger | null): F {
  (fn as F & WithTrigger).trigger = trigger;
  return fn;
}

export function triggerOf(fn: (e: never) => boolean): Trigger | null {
  return (fn as WithTrigger).trigger ?? null;
}

/** How many candidates a trigger lets through, roughly: short literals (`.exe`, `\\`) occur everywhere. */
function breadth(t: Trigger): number {
  let n = 0;
  for (const part of t) for (const id of part.wanted.keys()) n += (part.index.lengthOf(id) ?? 1) >= 5 ? 1 : 8;
  return n;
}

/** AND: any operand's trigger is necessary for the whole; the narrowest one is kept. */
export function triggerOfAll(fns: Array<(e: never) => boolean>): Trigger | null {
  let best: Trigger | null = null;
  let bestBreadth = Infinity;
  for (const fn of fns) {
    const t = triggerOf(fn);
    if (!t) continue;
    const b = breadth(t);
    if (b < bestBreadth) {
      best = t;
      bestBreadth = b;
    }
  }
  return best;
}

/** OR: the union of the operands' triggers, and none as soon as one operand has none. */
export function triggerOfAny(fns: Array<(e: never) => boolean>): Trigger | null {
  if (fns.length === 0) return null;
  const out: Trigger = [];
  for (const fn of fns) {
    const t = triggerOf(fn);
    if (!t) return null;
    out.push(...t);
  }
  return out;
}
