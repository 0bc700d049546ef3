import { describe, expect, it } from 'vitest';
import { defaultRolePolicies, evaluate, explain, matchesPattern, validatePolicy, type Policy, type Role } from './engine.js';

const ws = 'workspace/w1';
const res = (path: string, attributes?: Record<string, unknown>) => ({ type: path.split('/')[2] ?? 'workspace', path, attributes });
const allow = (id: string, over: Partial<Policy> = {}): Policy => ({ id, name: id, effect: 'allow', actions: ['*'], resources: ['*'], priority: 10, ...over });
const deny = (id: string, over: Partial<Policy> = {}): Policy => allow(id, { effect: 'deny', ...over });

describe('matchesPattern', () => {
  it.each([
    ['*', 'alerts:read', ':', true],
    ['alerts:*', 'alerts:update', ':', true],
    ['alerts:*', 'incidents:update', ':', false],
    ['*:read', 'audit:read', ':', true],
    ['*:read', 'audit:export', ':', false],
    ['alerts:read', 'alerts:read', ':', true],
    ['alerts:read', 'alerts:reads', ':', false],
    ['workspace/123/incidents/*', 'workspace/123/incidents/42', '/', true],
    ['workspace/123/incidents/*', 'workspace/123/incidents/42/comments/1', '/', true],
    ['workspace/123/incidents/*', 'workspace/123/incidents', '/', false],
    ['workspace/*/incidents/*', 'workspace/9/incidents/1', '/', true],
    ['workspace/*/incidents/*', 'workspace/9/alerts/1', '/', false],
    ['workspace/123/*', 'workspace/124/alerts/1', '/', false],
    ['workspace/123/alerts', 'workspace/123/alerts', '/', true],
    ['workspace/123/alerts', 'workspace/123/alerts/1', '/', false],
  ] as const)('%s vs %s → %s', (pattern, value, sep, expected) => expect(matchesPattern(pattern, value, sep)).toBe(expected));
});

describe('evaluate', () => {
  const at = (iso: string) => new Date(iso);
  it.each([
    ['default deny when nothing matches', [], {}, 'alerts:read', `${ws}/alerts/1`, {}, false, null],
    ['allow when a policy matches', [allow('a', { actions: ['alerts:read'] })], {}, 'alerts:read', `${ws}/alerts/1`, {}, true, 'a'],
    ['higher priority wins over a deny', [deny('d', { priority: 10 }), allow('a', { priority: 20 })], {}, 'alerts:read', `${ws}/alerts/1`, {}, true, 'a'],
    ['higher priority deny wins over an allow', [allow('a', { priority: 10 }), deny('d', { priority: 20 })], {}, 'alerts:read', `${ws}/alerts/1`, {}, false, 'd'],
    ['deny wins at equal priority', [allow('a'), deny('d')], {}, 'alerts:read', `${ws}/alerts/1`, {}, false, 'd'],
    ['deny wins at equal priority in either order', [deny('d'), allow('a')], {}, 'alerts:read', `${ws}/alerts/1`, {}, false, 'd'],
    ['role condition holds', [allow('a', { conditions: { roles: ['analyst'] } })], { role: 'analyst' }, 'alerts:update', `${ws}/alerts/1`, {}, true, 'a'],
    ['role condition fails', [allow('a', { conditions: { roles: ['analyst'] } })], { role: 'viewer' }, 'alerts:update', `${ws}/alerts/1`, {}, false, null],
    ['subject attribute', [allow('a', { conditions: { subject: { team: ['red', 'blue'] } } })], { attributes: { team: 'blue' } }, 'x:y', `${ws}/x`, {}, true, 'a'],
    ['subject attribute mismatch', [allow('a', { conditions: { subject: { team: 'red' } } })], { attributes: { team: 'blue' } }, 'x:y', `${ws}/x`, {}, false, null],
    ['resource attribute from a list', [allow('a', { conditions: { resource: { severity: ['low', 'medium'] } } })], {}, 'alerts:update', `${ws}/alerts/1`, { attrs: { severity: 'low' } }, true, 'a'],
    ['resource attribute mismatch', [allow('a', { conditions: { resource: { severity: 'low' } } })], {}, 'alerts:update', `${ws}/alerts/1`, { attrs: { severity: 'critical' } }, false, null],
    ['IPv4 inside CIDR', [allow('a', { conditions: { sourceIpCidrs: ['10.0.0.0/8'] } })], {}, 'x:y', `${ws}/x`, { ip: '10.20.30.40' }, true, 'a'],
    ['IPv4 outside CIDR', [allow('a', { conditions: { sourceIpCidrs: ['10.0.0.0/8'] } })], {}, 'x:y', `${ws}/x`, { ip: '192.168.1.1' }, false, null],
    ['IPv4-mapped IPv6 inside CIDR', [allow('a', { conditions: { sourceIpCidrs: ['10.0.0.0/8'] } })], {}, 'x:y', `${ws}/x`, { ip: '::ffff:10.1.2.3' }, true, 'a'],
    ['IPv6 inside CIDR', [allow('a', { conditions: { sourceIpCidrs: ['2001:db8::/32'] } })], {}, 'x:y', `${ws}/x`, { ip: '2001:db8:1::5' }, true, 'a'],
    ['IPv6 outside CIDR', [allow('a', { conditions: { sourceIpCidrs: ['2001:db8::/32'] } })], {}, 'x:y', `${ws}/x`, { ip: '2001:db9::1' }, false, null],
    ['no IP known fails an IP condition', [allow('a', { conditions: { sourceIpCidrs: ['0.0.0.0/0'] } })], {}, 'x:y', `${ws}/x`, {}, false, null],
    ['inside office hours (UTC)', [allow('a', { conditions: { timeOfDay: { from: '08:00', to: '18:00' } } })], {}, 'x:y', `${ws}/x`, { time: at('2026-11-23T09:30:00Z') }, true, 'a'],
    ['outside office hours (UTC)', [allow('a', { conditions: { timeOfDay: { from: '08:00', to: '18:00' } } })], {}, 'x:y', `${ws}/x`, { time: at('2026-11-23T18:00:00Z') }, false, null],
    ['night window wrapping midnight', [allow('a', { conditions: { timeOfDay: { from: '22:00', to: '06:00' } } })], {}, 'x:y', `${ws}/x`, { time: at('2026-11-23T02:00:00Z') }, true, 'a'],
    ['night window, daytime', [allow('a', { conditions: { timeOfDay: { from: '22:00', to: '06:00' } } })], {}, 'x:y', `${ws}/x`, { time: at('2026-11-23T12:00:00Z') }, false, null],
    ['office hours in another timezone', [allow('a', { conditions: { timeOfDay: { from: '09:00', to: '17:00', timezone: 'America/New_York' } } })], {}, 'x:y', `${ws}/x`, { time: at('2026-11-23T15:00:00Z') }, true, 'a'],
    ['before office hours in that timezone', [allow('a', { conditions: { timeOfDay: { from: '09:00', to: '17:00', timezone: 'America/New_York' } } })], {}, 'x:y', `${ws}/x`, { time: at('2026-11-23T13:00:00Z') }, false, null],
    ['weekday allowed', [allow('a', { conditions: { daysOfWeek: [1, 2, 3, 4, 5] } })], {}, 'x:y', `${ws}/x`, { time: at('2026-11-23T12:00:00Z') }, true, 'a'],
    ['weekend refused', [allow('a', { conditions: { daysOfWeek: [1, 2, 3, 4, 5] } })], {}, 'x:y', `${ws}/x`, { time: at('2026-11-22T12:00:00Z') }, false, null],
    ['resource wildcard limits the workspace', [allow('a', { resources: ['workspace/w2/*'] })], {}, 'x:y', `${ws}/x`, {}, false, null],
  ] as Array<[string, Policy[], { role?: Role; attributes?: Record<string, unknown> }, string, string, { ip?: string; time?: Date; attrs?: Record<string, unknown> }, boolean, string | null]>)(
    '%s',
    (_name, policies, subject, action, path, ctx, allowed, policyId) => {
      const decision = evaluate(policies, subject, action, res(path, ctx.attrs), { ip: ctx.ip, time: ctx.time });
      expect(decision.allowed).toBe(allowed);
      expect(decision.policyId).toBe(policyId);
      if (policyId === null) expect(decision.reason).toBe('no policy matched (default deny)');
    },
  );
});

describe('explain', () => {
  it('names the deciding policy and says why the others did not apply', () => {
    const policies = [allow('readers', { actions: ['*:read'], priority: 5 }), deny('no-night', { conditions: { timeOfDay: { from: '22:00', to: '06:00' } }, priority: 50 }), allow('ips', { conditions: { sourceIpCidrs: ['10.0.0.0/8'] } })];
    const result = explain(policies, { role: 'viewer' }, 'alerts:read', res(`${ws}/alerts/1`), { ip: '192.168.0.9', time: new Date('2026-11-23T12:00:00Z') });
    expect(result.allowed).toBe(true);
    expect(result.policyId).toBe('readers');
    expect(result.reason).toBe(`policy "readers" (priority 5) allows alerts:read on ${ws}/alerts/1`);
    expect(result.evaluated).toEqual([
      { policyId: 'readers', policyName: 'readers', priority: 5, effect: 'allow', matched: true, why: 'applies' },
      { policyId: 'no-night', policyName: 'no-night', priority: 50, effect: 'deny', matched: false, why: 'time is outside 22:00–06:00 UTC' },
      { policyId: 'ips', policyName: 'ips', priority: 10, effect: 'allow', matched: false, why: 'source IP 192.168.0.9 is not in 10.0.0.0/8' },
    ]);
  });
});

describe('default role policies', () => {
  const defaults = defaultRolePolicies();
  it.each([
    ['viewer', 'alerts:read', true],
    ['viewer', 'alerts:update', false],
    ['viewer', 'members:invite', false],
    ['analyst', 'alerts:update', true],
    ['analyst', 'incidents:create', true],
    ['analyst', 'members:update', false],
    ['analyst', 'invitations:create', false],
    ['admin', 'invitations:create', true],
    ['admin', 'policies:write', true],
    ['admin', 'workspace:delete', false],
    ['admin', 'members:set-owner', false],
    ['owner', 'workspace:delete', true],
    ['owner', 'members:set-owner', true],
  ] as Array<[Role, string, boolean]>)('%s may %s: %s', (role, action, expected) => {
    expect(evaluate(defaults, { role }, action, res(`${ws}/${action.split(':')[0]}`)).allowed).toBe(expected);
  });
  it('a workspace policy at higher priority overrides a default', () => {
    const freeze = deny('freeze', { actions: ['alerts:update'], priority: 500 });
    expect(evaluate([...defaults, freeze], { role: 'owner' }, 'alerts:update', res(`${ws}/alerts/1`)).allowed).toBe(false);
  });
});

describe('validatePolicy', () => {
  const good = { name: 'office only', effect: 'deny', actions: ['*'], resources: ['*'], priority: 200, conditions: { sourceIpCidrs: ['10.0.0.0/8', '2001:db8::/32'], timeOfDay: { from: '08:00', to: '18:00', timezone: 'Europe/Berlin' } } };
  it('accepts a valid policy', () => expect(validatePolicy(good)).toMatchObject({ ok: true, policy: { name: 'office only', priority: 200 } }));
  it.each([
    [{ ...good, effect: 'maybe' }, 'effect must be allow or deny'],
    [{ ...good, actions: [] }, 'actions must be a non-empty list of patterns'],
    [{ ...good, resources: ['a b'] }, 'resources must be a non-empty list of patterns'],
    [{ ...good, priority: 1.5 }, 'priority must be a whole number from 0 to 10000'],
    [{ ...good, conditions: { sourceIpCidrs: ['10.0.0.0/33'] } }, 'sourceIpCidrs must be a list of CIDR blocks (IPv4 or IPv6)'],
    [{ ...good, conditions: { timeOfDay: { from: '25:00', to: '06:00' } } }, 'timeOfDay needs from and to as HH:MM'],
    [{ ...good, conditions: { timeOfDay: { from: '01:00', to: '06:00', timezone: 'Mars/Olympus' } } }, 'unknown timezone Mars/Olympus'],
    [{ ...good, conditions: { roles: ['superuser'] } }, 'roles must be a list of owner, admin, analyst, viewer'],
    [{ ...good, conditions: { mood: 'happy' } }, 'unknown condition mood'],
  ])('refuses %j', (input, error) => {
    const result = validatePolicy(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors).toContain(error);
  });
});
