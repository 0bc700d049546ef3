import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLimits } from '../src/http/rate-limit.js';
import { testDatabaseUrl, testRedisUrl, uniqueName } from './helpers/services.js';
import { buildTestApp, buildUser, type TestApp } from './helpers/app.js';

describe('parseLimits', () => {
  it('overrides named limits and refuses unknown names or bad syntax', () => {
    const limits = parseLimits('workspace-create=2/10m, invitation=50/1h');
    expect(limits['workspace-create']).toEqual({ points: 2, windowMs: 600_000 });
    expect(limits.invitation).toEqual({ points: 50, windowMs: 3_600_000 });
    expect(limits['sign-in']).toEqual({ points: 20, windowMs: 900_000 });
    expect(() => parseLimits('nope=1/1m')).toThrow(/unknown limit/);
    expect(() => parseLimits('invitation=ten')).toThrow(/name=points\/window/);
  });
});

describe.skipIf(!(testDatabaseUrl && testRedisUrl))('rate limits shared through Redis', () => {
  let first: TestApp & { databaseUrl?: string };
  let second: TestApp;
  beforeAll(async () => {
    // Two instances on one PostgreSQL and one Redis, as behind a load balancer.
    const shared = { REDIS_URL: testRedisUrl!, REDIS_KEY_PREFIX: `${uniqueName('siqrl')}:` };
    first = await buildTestApp(shared, { postgres: true });
    second = await buildTestApp({ ...shared, DATABASE_URL: first.databaseUrl! });
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
  });

  it('counts workspace creations across both instances: the 6th within the hour gets 429', async () => {
    const user = await buildUser(first.app);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const app = i % 2 === 0 ? first.app : second.app;
      statuses.push((await app.inject({ method: 'POST', url: '/api/v1/workspaces', headers: user.headers, payload: { name: `shared-${i}` } })).statusCode);
    }
    expect(statuses).toEqual([201, 201, 201, 201, 201, 429]);
    const refused = await first.app.inject({ method: 'POST', url: '/api/v1/workspaces', headers: user.headers, payload: { name: 'again' } });
    expect(refused.json().error.code).toBe('SIQ_RATE_LIMITED');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(3500);
  });

  it('drops cached policy decisions on every instance when a policy changes', async () => {
    const owner = await buildUser(first.app);
    const ws = (await first.app.inject({ method: 'POST', url: '/api/v1/workspaces', headers: owner.headers, payload: { name: 'cached' } })).json();
    const url = `/api/v1/workspaces/${ws.id}/members`;
    expect((await second.app.inject({ method: 'GET', url, headers: owner.headers })).statusCode).toBe(200);
    const policy = await first.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/policies`, headers: owner.headers, payload: { name: 'freeze', effect: 'deny', actions: ['members:read'], resources: ['*'], priority: 900 } });
    expect(policy.statusCode).toBe(201);
    expect((await second.app.inject({ method: 'GET', url, headers: owner.headers })).statusCode).toBe(403);
  });
});
