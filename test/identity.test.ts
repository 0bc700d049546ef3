import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_AFTER_FAILURES } from '../src/modules/identity/service.js';
import { buildTestApp, buildUser, TEST_PASSWORD, type TestApp } from './helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ ADMIN_EMAILS: 'first-admin@example.test' });
});
afterAll(async () => t.close());

const post = (url: string, payload?: unknown, headers: Record<string, string> = {}) => t.app.inject({ method: 'POST', url, payload: payload as object, headers });
const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });

describe('first run', () => {
  it('gives ADMIN_EMAILS a one-time setup code and no password until it is used', async () => {
    const issued = await t.app.identity.bootstrapAdmins();
    expect(issued.map((i) => i.email)).toEqual(['first-admin@example.test']);
    const code = issued[0]!.setupCode;
    expect((await post('/api/v1/auth/login', { email: 'first-admin@example.test', password: TEST_PASSWORD })).json().error.code).toBe('SIQ_INVALID_CREDENTIALS');

    const weak = await post('/api/v1/auth/setup', { email: 'first-admin@example.test', setupCode: code, password: 'password1234' });
    expect(weak.statusCode).toBe(400);
    expect(weak.json().error.code).toBe('SIQ_WEAK_PASSWORD');

    const done = await post('/api/v1/auth/setup', { email: 'first-admin@example.test', setupCode: code, password: TEST_PASSWORD, displayName: 'First Admin' });
    expect(done.statusCode).toBe(200);
    expect(done.json().user).toMatchObject({ email: 'first-admin@example.test', isPlatformAdmin: true, displayName: 'First Admin' });

    const again = await post('/api/v1/auth/setup', { email: 'first-admin@example.test', setupCode: code, password: TEST_PASSWORD });
    expect(again.json().error.code).toBe('SIQ_SETUP_TOKEN_INVALID');
    expect((await post('/api/v1/auth/login', { email: 'First-Admin@example.test', password: TEST_PASSWORD })).statusCode).toBe(200);
    expect(await t.app.identity.bootstrapAdmins()).toEqual([]); // nothing new on the next start
  });
});

describe('sign-in and sessions', () => {
  it('signs in, answers /auth/me, and refuses requests without a valid token', async () => {
    const user = await buildUser(t.app);
    const me = await get('/api/v1/auth/me', user.headers);
    expect(me.statusCode).toBe(200);
    expect(me.json().user.email).toBe(user.email);
    expect(me.json().user).not.toHaveProperty('passwordHash');
    expect((await get('/api/v1/auth/me')).json().error.code).toBe('SIQ_UNAUTHENTICATED');
    expect((await get('/api/v1/auth/me', { authorization: 'Bearer not.a.jwt' })).json().error.code).toBe('SIQ_TOKEN_INVALID');
  });

  it('rotates refresh tokens, and reuse of a used one revokes the whole family', async () => {
    const user = await buildUser(t.app);
    const first = await post('/api/v1/auth/refresh', { refreshToken: user.refreshToken });
    expect(first.statusCode).toBe(200);
    const second = await post('/api/v1/auth/refresh', { refreshToken: first.json().refreshToken });
    expect(second.statusCode).toBe(200);
    const latest = second.json();

    const reuse = await post('/api/v1/auth/refresh', { refreshToken: user.refreshToken });
    expect(reuse.statusCode).toBe(401);
    expect(reuse.json().error.code).toBe('SIQ_TOKEN_REUSED');
    // The newest token of that family is dead too, and so is its access token.
    expect((await post('/api/v1/auth/refresh', { refreshToken: latest.refreshToken })).json().error.code).toBe('SIQ_TOKEN_INVALID');
    expect((await get('/api/v1/auth/me', { authorization: `Bearer ${latest.accessToken}` })).json().error.code).toBe('SIQ_TOKEN_INVALID');
    const events = await t.app.platform.db.query<{ type: string }>("SELECT type FROM security_events WHERE user_id = $1 AND type = 'auth.refresh_token_reused'", [user.id]);
    expect(events.rows).toHaveLength(1);
  });

  it('signs out a session so its refresh fails, lists and revokes own sessions', async () => {
    const user = await buildUser(t.app);
    const other = await t.app.identity.signIn(user.email, TEST_PASSWORD, { ip: '10.0.0.2', userAgent: 'second-device' });
    const sessions = await get('/api/v1/auth/sessions', user.headers);
    expect(sessions.json().sessions).toHaveLength(2);
    expect(sessions.json().sessions.filter((s: { current: boolean }) => s.current)).toHaveLength(1);

    const revoke = await t.app.inject({ method: 'DELETE', url: `/api/v1/auth/sessions/${other.sessionId}`, headers: user.headers });
    expect(revoke.statusCode).toBe(204);
    expect((await post('/api/v1/auth/refresh', { refreshToken: other.refreshToken })).json().error.code).toBe('SIQ_TOKEN_INVALID');

    const stranger = await buildUser(t.app);
    const foreign = await t.app.inject({ method: 'DELETE', url: `/api/v1/auth/sessions/${user.token ? (await t.app.identity.listSessions(user.id))[0]!.id : ''}`, headers: stranger.headers });
    expect(foreign.statusCode).toBe(404);

    expect((await post('/api/v1/auth/logout', undefined, user.headers)).statusCode).toBe(204);
    expect((await post('/api/v1/auth/refresh', { refreshToken: user.refreshToken })).json().error.code).toBe('SIQ_TOKEN_INVALID');
    expect((await get('/api/v1/auth/me', user.headers)).json().error.code).toBe('SIQ_TOKEN_INVALID');
  });

  it('slows repeated failures down, then locks the account for a while', async () => {
    const user = await buildUser(t.app);
    const attempt = () => post('/api/v1/auth/login', { email: user.email, password: 'wrong-password-123' });
    const codes: string[] = [];
    for (let i = 0; i < LOCK_AFTER_FAILURES; i++) {
      codes.push((await attempt()).json().error.code);
      // Skip the growing wait between attempts, so the test reaches the lock quickly.
      await t.app.platform.cache.delete(`signin:wait:${user.id}`);
    }
    expect(codes).toEqual(Array(LOCK_AFTER_FAILURES).fill('SIQ_INVALID_CREDENTIALS'));
    const locked = await post('/api/v1/auth/login', { email: user.email, password: TEST_PASSWORD });
    expect(locked.statusCode).toBe(423);
    expect(locked.json().error.code).toBe('SIQ_ACCOUNT_LOCKED');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    const types = await t.app.platform.db.query<{ type: string }>('SELECT type FROM security_events WHERE user_id = $1 ORDER BY id', [user.id]);
    expect(types.rows.map((r) => r.type)).toContain('auth.account_locked');
  });

  it('makes a caller wait after three failures in a row', async () => {
    const user = await buildUser(t.app);
    for (let i = 0; i < 3; i++) await post('/api/v1/auth/login', { email: user.email, password: 'wrong-password-123' });
    const slowed = await post('/api/v1/auth/login', { email: user.email, password: TEST_PASSWORD });
    expect(slowed.statusCode).toBe(429);
    expect(slowed.json().error.code).toBe('SIQ_RATE_LIMITED');
    expect(slowed.headers['retry-after']).toBeDefined();
  });
});
