/** Shared shapes between detection (which raises), alerts (which stores) and notify (which tells people). */

export const SEVERITIES = ['informational', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Severity as a number for comparisons (informational = 0 … critical = 4). */
export function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

/** A reference to a stored event: the store is partitioned by time, so the time is part of the key. */
export interface EventRef {
  id: string;
  ts: string;
}

/** What a detection rule produced: one match of one rule, for one group key. */
export interface Detection {
  workspaceId: string;
  /** The rule's id (a detection rule row's uuid, or `platform:<name>` for built-in rules). */
  ruleId: string;
  ruleTitle: string;
  ruleKind: 'sigma' | 'threshold' | 'correlation' | 'platform';
  severity: Severity;
  /** Values of the rule's group-by fields joined (`''` when the rule does not group). */
  groupKey: string;
  /** Events that matched (at most a few hundred are kept per alert). */
  events: EventRef[];
  /** When it happened: the time of the last matching event. */
  at: Date;
  /** ATT&CK and other tags of the rule (`attack.t1059.001`). */
  tags?: string[];
  /** Rule-specific facts (counts, windows, field values). */
  details?: Record<string, unknown>;
}

/** What a notification carries about an alert. */
export interface AlertNotice {
  id: string;
  workspaceId: string;
  ruleId: string;
  ruleTitle: string;
  ruleKind: Detection['ruleKind'];
  severity: Severity;
  groupKey: string;
  status: string;
  count: number;
  firstSeen: string;
  lastSeen: string;
  tags: string[];
}
