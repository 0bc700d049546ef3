import { SiqError } from '../../errors.js';
import { SEVERITIES, type Severity } from '../alerts/types.js';
import { compileMatcher } from '../events/query/match.js';
import { parseQuery, QuerySyntaxError } from '../events/query/parser.js';
import { parseTimespan, SigmaRuleError, type CountCondition } from './sigma/rule.js';

/**
 * Threshold rules: a search query (the search language of the event store) plus a count or a
 * distinct count over a sliding window, grouped by fields — "more than 50 errors in 5 minutes",
 * "one source IP failing sign-in for 20 accounts in 10 minutes". They run on the same windows as
 * Sigma correlations (windows.ts).
 */
export interface ThresholdDefinition {
  title: string;
  description?: string;
  query: string;
  groupBy?: string[];
  /** `5m`, `1h`, … as in Sigma correlations. */
  timespan: string;
  /** Fires when the count satisfies this, e.g. `{ gt: 50 }`. */
  condition: CountCondition;
  /** Count distinct values of this field instead of events. */
  distinctField?: string;
  level?: Severity;
  tags?: string[];
}

export interface CompiledThreshold {
  definition: ThresholdDefinition;
  match: (doc: Record<string, unknown>) => boolean;
  timespanMs: number;
}

export function compileThreshold(input: unknown): CompiledThreshold {
  const fail = (reason: string, message: string): never => {
    throw new SigmaRuleError(reason, message);
  };
  if (input === null || typeof input !== 'object' || Array.isArray(input)) fail('invalid_threshold', 'a threshold rule is a JSON object');
  const d = input as ThresholdDefinition;
  if (typeof d.title !== 'string' || !d.title.trim() || d.title.length > 256) fail('missing_title', 'title must be 1–256 characters');
  if (typeof d.query !== 'string') fail('invalid_threshold', 'query must be a search query ("*" for every event)');
  if (d.groupBy !== undefined && (!Array.isArray(d.groupBy) || d.groupBy.some((f) => typeof f !== 'string' || !f))) fail('invalid_threshold', 'groupBy must be a list of field names');
  if (d.distinctField !== undefined && (typeof d.distinctField !== 'string' || !d.distinctField)) fail('invalid_threshold', 'distinctField must be a field name');
  if (d.level !== undefined && !(SEVERITIES as readonly string[]).includes(d.level)) fail('invalid_level', `level must be one of ${SEVERITIES.join(', ')}`);
  const condition = d.condition;
  if (!condition || typeof condition !== 'object' || Object.keys(condition).length === 0) fail('invalid_threshold', 'condition must be a map such as {"gt": 50}');
  for (const [k, v] of Object.entries(condition)) {
    if (!['gt', 'gte', 'lt', 'lte', 'eq'].includes(k) || typeof v !== 'number' || !Number.isFinite(v)) fail('invalid_threshold', `condition "${k}" must be gt, gte, lt, lte or eq with a number`);
  }
  if (condition.gt === undefined && condition.gte === undefined && condition.eq === undefined) fail('invalid_threshold', 'the condition needs a lower bound (gt, gte or eq): a window fires when enough events arrive');
  let match: (doc: Record<string, unknown>) => boolean;
  try {
    match = d.query.trim() === '' || d.query.trim() === '*' ? () => true : compileMatcher(parseQuery(d.query));
  } catch (err) {
    if (err instanceof QuerySyntaxError) fail('invalid_query', err.message);
    throw err;
  }
  return { definition: d, match: match!, timespanMs: parseTimespan(d.timespan) };
}

/** Validates and turns any threshold error into the catalogue's rule error. */
export function checkThreshold(input: unknown): CompiledThreshold {
  try {
    return compileThreshold(input);
  } catch (err) {
    if (err instanceof SigmaRuleError) throw new SiqError('SIQ_RULE_INVALID', `The threshold rule is invalid: ${err.message}`, { details: { reason: err.reason } });
    throw err;
  }
}

/**
 * The threshold rules every workspace starts with (each can be disabled or re-levelled). Field
 * names are the normalised schema's: `event.severity` follows syslog (0 emergency … 3 error).
 */
export const BUILTIN_THRESHOLDS: Record<string, ThresholdDefinition> = {
  'error-rate-spike': {
    title: 'Error rate spike',
    description: 'More than 50 error-level events (syslog severity error or worse) from one host in 5 minutes.',
    query: 'event.severity:<=3',
    groupBy: ['host.name'],
    timespan: '5m',
    condition: { gt: 50 },
    level: 'medium',
  },
  'critical-error': {
    title: 'Critical-level error',
    description: 'Any event at syslog severity critical, alert or emergency.',
    query: 'event.severity:<=2',
    groupBy: ['host.name'],
    timespan: '1m',
    condition: { gte: 1 },
    level: 'high',
  },
  'authentication-failure-burst': {
    title: 'Authentication failure burst',
    description: 'One source address failing to sign in to 20 or more different accounts in 10 minutes.',
    query: 'event.category:authentication AND event.outcome:failure',
    groupBy: ['source.ip'],
    timespan: '10m',
    distinctField: 'user.name',
    condition: { gte: 20 },
    level: 'high',
    tags: ['attack.credential_access', 'attack.t1110'],
  },
  'privilege-escalation': {
    title: 'Privilege escalation',
    description: 'sudo or su to root, or a user added to an administrators group (Windows 4728/4732/4756, Linux usermod/gpasswd).',
    query: '(process.name:(sudo OR su) AND message:*root*) OR event.code:(4728 OR 4732 OR 4756) OR (process.name:(usermod OR gpasswd) AND message:(*sudo* OR *wheel* OR *admin*))',
    groupBy: ['host.name', 'user.name'],
    timespan: '1m',
    condition: { gte: 1 },
    level: 'high',
    tags: ['attack.privilege_escalation', 'attack.t1078', 'attack.t1548'],
  },
  'platform-account-lockout': {
    title: 'SentinelIQ account locked out',
    description: 'A SentinelIQ account was locked after repeated failed sign-ins.',
    query: 'event.action:"auth.account_locked"',
    groupBy: ['user.id'],
    timespan: '1m',
    condition: { gte: 1 },
    level: 'medium',
    tags: ['attack.credential_access', 'attack.t1110'],
  },
  'platform-policy-denials': {
    title: 'SentinelIQ policy denials',
    description: 'Ten or more requests of one user or API key refused by the policy engine in 5 minutes.',
    query: 'event.action:"policy.denied"',
    groupBy: ['user.id'],
    timespan: '5m',
    condition: { gte: 10 },
    level: 'low',
  },
};
