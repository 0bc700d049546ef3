import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * The policy decision engine: pure, no I/O.
 *
 * A policy applies when one of its action patterns and one of its resource patterns match and
 * all of its conditions hold. Among applicable policies the highest priority wins; at equal
 * priority deny wins over allow; when none applies the answer is deny.
 *
 * Patterns:
 * - actions are `domain:verb` (`alerts:read`); `*` matches any action, and `*` on either side of
 *   the colon matches any domain or verb (`alerts:*`, `*:read`).
 * - resources are paths (`workspace/<id>/incidents/<id>`); `*` alone matches any resource, a
 *   `*` segment matches exactly one segment, and a trailing `/**` or `/*` at the end matches
 *   the rest of the path (one or more segments).
 *
 * Default role policies (priority 100, each restricted to its role by `conditions.roles`):
 *
 * | role    | allowed                                                                 | denied                              |
 * |---------|-------------------------------------------------------------------------|-------------------------------------|
 * | viewer  | `*:read`                                                                |                                     |
 * | analyst | `*:read`, alerts, incidents, evidence, events, rules, observables, uploads |                                  |
 * | admin   | everything                                                              | `workspace:delete`, `members:set-owner` |
 * | owner   | everything                                                              |                                     |
 */
export type Effect = 'allow' | 'deny';
export type Role = 'owner' | 'admin' | 'analyst' | 'viewer';
export const ROLES: readonly Role[] = ['owner', 'admin', 'analyst', 'viewer'];

type Scalar = string | number | boolean;

export interface Condition {
  roles?: Role[];
  subject?: Record<string, Scalar | Scalar[]>;
  resource?: Record<string, Scalar | Scalar[]>;
  sourceIpCidrs?: string[];
  timeOfDay?: { from: string; to: string; timezone?: string };
  daysOfWeek?: number[];
}

export interface Policy {
  id: string;
  name: string;
  effect: Effect;
  actions: string[];
  resources: string[];
  conditions?: Condition;
  priority: number;
  workspaceId?: string | null;
}

export interface Subject {
  userId?: string;
  apiKeyId?: string;
  role?: Role;
  attributes?: Record<string, unknown>;
}

export interface Resource {
  type: string;
  path: string;
  attributes?: Record<string, unknown>;
}

export interface RequestContext {
  ip?: string;
  time?: Date;
}

export interface Decision {
  allowed: boolean;
  effect: Effect;
  policyId: string | null;
  policyName: string | null;
  reason: string;
}

export interface Explanation extends Decision {
  evaluated: Array<{ policyId: string; policyName: string; priority: number; effect: Effect; matched: boolean; why: string }>;
}

/** Matches one action (`:`) or resource (`/`) pattern. */
export function matchesPattern(pattern: string, value: string, separator: ':' | '/'): boolean {
  if (pattern === '*' || pattern === value) return true;
  const p = pattern.split(separator);
  const v = value.split(separator);
  for (let i = 0; i < p.length; i++) {
    const part = p[i]!;
    // In resource paths a trailing wildcard segment takes the rest of the path.
    if (separator === '/' && i === p.length - 1 && (part === '*' || part === '**')) return v.length > i;
    if (i >= v.length) return false;
    if (part !== '*' && part !== v[i]) return false;
  }
  return p.length === v.length;
}

function attributeMatches(expected: Scalar | Scalar[], actual: unknown): boolean {
  const wanted = Array.isArray(expected) ? expected : [expected];
  const values = Array.isArray(actual) ? actual : [actual];
  return values.some((a) => wanted.some((w) => a === w || (a !== undefined && a !== null && String(a) === String(w))));
}

function ipInCidrs(ip: string | undefined, cidrs: string[]): boolean {
  if (!ip) return false;
  const address = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split('/');
    const type = isIPv4(net!) ? 'ipv4' : 'ipv6';
    list.addSubnet(net!, Number(bits ?? (type === 'ipv4' ? 32 : 128)), type);
  }
  if (isIPv4(address)) return list.check(address, 'ipv4');
  if (isIPv6(address)) return list.check(address, 'ipv6');
  return false;
}

function localParts(time: Date, timezone = 'UTC'): { minutes: number; day: number } {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: timezone, hour: '2-digit', minute: '2-digit', weekday: 'short', hourCycle: 'h23' }).formatToParts(time);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  return { minutes: Number(get('hour')) * 60 + Number(get('minute')), day: days.indexOf(get('weekday')) };
}

function toMinutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h! * 60 + m!;
}

/** Why a policy does not apply, or null when it does. */
function mismatch(policy: Policy, subject: Subject, action: string, resource: Resource, context: RequestContext): string | null {
  if (!policy.actions.some((a) => matchesPattern(a, action, ':'))) return `action ${action} matches none of ${policy.actions.join(', ')}`;
  if (!policy.resources.some((r) => matchesPattern(r, resource.path, '/'))) return `resource ${resource.path} matches none of ${policy.resources.join(', ')}`;
  const c = policy.conditions;
  if (!c) return null;
  if (c.roles && (!subject.role || !c.roles.includes(subject.role))) return `role ${subject.role ?? '(none)'} is not ${c.roles.join(' or ')}`;
  for (const [name, expected] of Object.entries(c.subject ?? {})) {
    const actual = name === 'userId' ? subject.userId : name === 'apiKeyId' ? subject.apiKeyId : name === 'role' ? subject.role : subject.attributes?.[name];
    if (!attributeMatches(expected, actual)) return `subject ${name} is not ${JSON.stringify(expected)}`;
  }
  for (const [name, expected] of Object.entries(c.resource ?? {})) {
    const actual = name === 'type' ? resource.type : resource.attributes?.[name];
    if (!attributeMatches(expected, actual)) return `resource ${name} is not ${JSON.stringify(expected)}`;
  }
  if (c.sourceIpCidrs && !ipInCidrs(context.ip, c.sourceIpCidrs)) return `source IP ${context.ip ?? '(unknown)'} is not in ${c.sourceIpCidrs.join(', ')}`;
  const time = context.time ?? new Date();
  if (c.timeOfDay) {
    const { minutes } = localParts(time, c.timeOfDay.timezone);
    const from = toMinutes(c.timeOfDay.from);
    const to = toMinutes(c.timeOfDay.to);
    const inside = from <= to ? minutes >= from && minutes < to : minutes >= from || minutes < to;
    if (!inside) return `time is outside ${c.timeOfDay.from}–${c.timeOfDay.to} ${c.timeOfDay.timezone ?? 'UTC'}`;
  }
  if (c.daysOfWeek) {
    const { day } = localParts(time, c.timeOfDay?.timezone);
    if (!c.daysOfWeek.includes(day)) return `day ${day} is not one of ${c.daysOfWeek.join(', ')}`;
  }
  return null;
}

export function explain(policies: Policy[], subject: Subject, action: string, resource: Resource, context: RequestContext = {}): Explanation {
  const evaluated: Explanation['evaluated'] = [];
  let winner: Policy | null = null;
  for (const policy of policies) {
    const why = mismatch(policy, subject, action, resource, context);
    evaluated.push({ policyId: policy.id, policyName: policy.name, priority: policy.priority, effect: policy.effect, matched: why === null, why: why ?? 'applies' });
    if (why !== null) continue;
    if (!winner || policy.priority > winner.priority || (policy.priority === winner.priority && policy.effect === 'deny' && winner.effect === 'allow')) winner = policy;
  }
  if (!winner) return { allowed: false, effect: 'deny', policyId: null, policyName: null, reason: 'no policy matched (default deny)', evaluated };
  const verb = winner.effect === 'allow' ? 'allows' : 'denies';
  return {
    allowed: winner.effect === 'allow',
    effect: winner.effect,
    policyId: winner.id,
    policyName: winner.name,
    reason: `policy "${winner.name}" (priority ${winner.priority}) ${verb} ${action} on ${resource.path}`,
    evaluated,
  };
}

export function evaluate(policies: Policy[], subject: Subject, action: string, resource: Resource, context: RequestContext = {}): Decision {
  const { evaluated: _evaluated, ...decision } = explain(policies, subject, action, resource, context);
  return decision;
}

const ANALYST_WRITES = ['alerts:*', 'incidents:*', 'evidence:*', 'events:*', 'rules:*', 'observables:*', 'uploads:*', 'searches:*'];

/** The role defaults, as data (see the table at the top of this file). */
export function defaultRolePolicies(): Policy[] {
  const base = { resources: ['*'], priority: 100 };
  return [
    { id: 'default:viewer', name: 'viewers read', effect: 'allow', actions: ['*:read'], conditions: { roles: ['viewer', 'analyst'] }, ...base },
    { id: 'default:analyst', name: 'analysts investigate', effect: 'allow', actions: ANALYST_WRITES, conditions: { roles: ['analyst'] }, ...base },
    { id: 'default:admin', name: 'admins manage', effect: 'allow', actions: ['*'], conditions: { roles: ['admin'] }, ...base },
    { id: 'default:admin-limits', name: 'admins cannot delete the workspace or make owners', effect: 'deny', actions: ['workspace:delete', 'members:set-owner'], conditions: { roles: ['admin'] }, ...base },
    { id: 'default:owner', name: 'owners do everything', effect: 'allow', actions: ['*'], conditions: { roles: ['owner'] }, ...base },
  ];
}

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

function validCidr(cidr: string): boolean {
  const [net, bits, extra] = cidr.split('/');
  if (extra !== undefined || !net) return false;
  const max = isIPv4(net) ? 32 : isIPv6(net) ? 128 : -1;
  if (max < 0) return false;
  if (bits === undefined) return true;
  return /^\d+$/.test(bits) && Number(bits) <= max;
}

/** Checks a policy from the API and returns it normalised, or every problem found. */
export function validatePolicy(input: unknown): { ok: true; policy: Omit<Policy, 'id'> } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const p = (input ?? {}) as Record<string, unknown>;
  if (typeof p.name !== 'string' || !p.name.trim() || p.name.length > 200) errors.push('name must be 1–200 characters');
  if (p.effect !== 'allow' && p.effect !== 'deny') errors.push('effect must be allow or deny');
  const list = (name: string, pattern: RegExp) => {
    const v = p[name];
    if (!Array.isArray(v) || v.length === 0 || v.length > 100 || !v.every((x) => typeof x === 'string' && pattern.test(x))) errors.push(`${name} must be a non-empty list of patterns`);
  };
  list('actions', /^(\*|[a-z*][a-z0-9_-]*:[a-z*][a-z0-9_*-]*)$/);
  list('resources', /^[A-Za-z0-9*_.:-]+(\/[A-Za-z0-9*_.:-]+)*$/);
  if (!Number.isInteger(p.priority) || (p.priority as number) < 0 || (p.priority as number) > 10000) errors.push('priority must be a whole number from 0 to 10000');
  const c = (p.conditions ?? {}) as Condition & Record<string, unknown>;
  if (typeof c !== 'object' || Array.isArray(c)) errors.push('conditions must be an object');
  else {
    const known = new Set(['roles', 'subject', 'resource', 'sourceIpCidrs', 'timeOfDay', 'daysOfWeek']);
    for (const key of Object.keys(c)) if (!known.has(key)) errors.push(`unknown condition ${key}`);
    if (c.roles !== undefined && (!Array.isArray(c.roles) || !c.roles.every((r) => ROLES.includes(r)))) errors.push(`roles must be a list of ${ROLES.join(', ')}`);
    if (c.sourceIpCidrs !== undefined && (!Array.isArray(c.sourceIpCidrs) || !c.sourceIpCidrs.every((x) => typeof x === 'string' && validCidr(x)))) errors.push('sourceIpCidrs must be a list of CIDR blocks (IPv4 or IPv6)');
    if (c.timeOfDay !== undefined) {
      const t = c.timeOfDay;
      if (!t || !HHMM.test(String(t.from)) || !HHMM.test(String(t.to))) errors.push('timeOfDay needs from and to as HH:MM');
      else if (t.timezone !== undefined) {
        try {
          new Intl.DateTimeFormat('en-US', { timeZone: t.timezone });
        } catch {
          errors.push(`unknown timezone ${t.timezone}`);
        }
      }
    }
    if (c.daysOfWeek !== undefined && (!Array.isArray(c.daysOfWeek) || !c.daysOfWeek.every((d) => Number.isInteger(d) && d >= 0 && d <= 6))) errors.push('daysOfWeek must be numbers 0 (Sunday) to 6');
    for (const name of ['subject', 'resource'] as const) {
      const v = c[name];
      if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v))) errors.push(`${name} must be an object of attribute values`);
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    policy: { name: (p.name as string).trim(), effect: p.effect as Effect, actions: p.actions as string[], resources: p.resources as string[], conditions: Object.keys(c).length ? c : undefined, priority: p.priority as number },
  };
}
