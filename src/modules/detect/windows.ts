import type { Cache } from '../../platform/cache/types.js';
import type { CountCondition, CorrelationType } from './sigma/rule.js';

/**
 * Sliding windows for correlation and threshold rules, kept in the platform cache: in Redis when
 * it is configured, so several ingest processes count into the same windows. A window fires when
 * its condition holds and is then cleared, so a burst fires once, not once per further event.
 */

export interface WindowSpec {
  type: CorrelationType;
  timespanMs: number;
  condition: CountCondition;
  /** temporal and temporal_ordered: the rule references that must all occur (in this order). */
  sequence?: string[];
}

export interface WindowHit {
  /** Stored event id. */
  eventId: string;
  /** Event time, ms. */
  at: number;
  /** value_count: the value counted. temporal: which referenced rule matched. */
  value?: string;
}

/** Whether a count satisfies `{gt, gte, lt, lte, eq}` (all given comparisons must hold). */
export function conditionHolds(condition: CountCondition, n: number): boolean {
  if (condition.gt !== undefined && !(n > condition.gt)) return false;
  if (condition.gte !== undefined && !(n >= condition.gte)) return false;
  if (condition.lt !== undefined && !(n < condition.lt)) return false;
  if (condition.lte !== undefined && !(n <= condition.lte)) return false;
  if (condition.eq !== undefined && n !== condition.eq) return false;
  return true;
}

/** Whether the rules of `sequence` occur in that order within the window (members are `ref\u0000eventId`). */
function orderedWithin(sequence: string[], members: Array<{ member: string; at: number }>): boolean {
  let after = -Infinity;
  for (const ref of sequence) {
    let next = Infinity;
    for (const m of members) if (m.member.startsWith(`${ref}\u0000`) && m.at >= after && m.at < next) next = m.at;
    if (next === Infinity) return false;
    after = next;
  }
  return true;
}

export interface WindowResult {
  fired: boolean;
  count: number;
}

export class Windows {
  constructor(private readonly cache: Cache, private readonly prefix = 'detect:win:') {}

  /** Adds one hit to the window `key` and says whether the rule fires. */
  async add(key: string, spec: WindowSpec, hit: WindowHit): Promise<WindowResult> {
    const name = this.prefix + key;
    let count: number;
    switch (spec.type) {
      case 'event_count':
        count = (await this.cache.windowAdd(name, hit.eventId, hit.at, spec.timespanMs)).count;
        break;
      case 'value_count':
        if (hit.value === undefined) return { fired: false, count: 0 };
        count = (await this.cache.windowAdd(name, hit.value, hit.at, spec.timespanMs)).count;
        break;
      case 'temporal': {
        const state = await this.cache.windowAdd(name, hit.value ?? '', hit.at, spec.timespanMs);
        count = state.count;
        break;
      }
      case 'temporal_ordered': {
        const state = await this.cache.windowAdd(name, `${hit.value ?? ''}\u0000${hit.eventId}`, hit.at, spec.timespanMs, { withMembers: true });
        const refs = new Set(state.members!.map((m) => m.member.split('\u0000')[0]));
        count = refs.size;
        if (conditionHolds(spec.condition, count) && orderedWithin(spec.sequence ?? [], state.members!)) {
          await this.cache.delete(name);
          return { fired: true, count };
        }
        return { fired: false, count };
      }
    }
    if (!conditionHolds(spec.condition, count)) return { fired: false, count };
    await this.cache.delete(name);
    return { fired: true, count };
  }
}
