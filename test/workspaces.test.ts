import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, buildTestApp, buildUser, buildWorkspace, TEST_PASSWORD, type TestApp } from './helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp();
});
afterAll(async () => t.close());

const req = (method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, headers: Record<string, string>, payload?: unknown) =>
  t.app.inject({ method, url, headers, payload: payload as object });

describe('workspaces and members', () => {
  it('creates, lists, renames and deletes a workspace; the creator is its owner', async () => {
    const owner = await buildUser(t.app);
    const ws = await buildWorkspace(t.app, owner, 'Blue Team');
    expect((await req('GET', '/api/v1/workspaces', owner.headers)).json().workspaces).toEqual([expect.objectContaining({ id: ws.id, name: 'Blue Team', role: 'owner' })]);
    const renamed = await req('PATCH', `/api/v1/workspaces/${ws.id}`, owner.headers, { name: 'Purple Team' });
    expect(renamed.json().name).toBe('Purple Team');
    expect((await req('DELETE', `/api/v1/workspaces/${ws.id}`, owner.headers)).statusCode).toBe(204);
    expect((await req('GET', `/api/v1/workspaces/${ws.id}`, owner.headers)).statusCode).toBe(404);
  });

  it('invites by email: a new person creates the account while accepting, once', async () => {
    const owner = await buildUser(t.app);
    const ws = await buildWorkspace(t.app, owner);
    const created = await req('POST', `/api/v1/workspaces/${ws.id}/invitations`, owner.headers, { email: 'New.Analyst@example.test', role: 'analyst' });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ email: 'new.analyst@example.test', role: 'analyst', emailSent: false });
    expect(created.json()).not.toHaveProperty('token');
    // The code only travels by email (logged when SMTP is not configured): take it from the service as the mail would carry it.
    const { WorkspaceService } = await import('../src/modules/workspaces/service.js');
    const invitation = await new WorkspaceService(t.app.platform).invite(ws.id, 'new.analyst@example.test', 'analyst', owner.id);
    const accepted = await t.app.inject({ method: 'POST', url: '/api/v1/invitations/accept', payload: { invitationCode: invitation.token, password: TEST_PASSWORD } });
    expect(accepted.statusCode).toBe(200);
    expect(accepted.json()).toMatchObject({ workspaceId: ws.id, role: 'analyst', tokens: { tokenType: 'Bearer' } });
    const again = await t.app.inject({ method: 'POST', url: '/api/v1/invitations/accept', headers: { authorization: `Bearer ${accepted.json().tokens.accessToken}` }, payload: { invitationCode: invitation.token } });
    expect(again.json().error.code).toBe('SIQ_INVITATION_INVALID');
    const members = (await req('GET', `/api/v1/workspaces/${ws.id}/members`, owner.headers)).json().members;
    expect(members.map((m: { email: string; role: string }) => [m.email, m.role]).sort()).toEqual([[owner.email, 'owner'], ['new.analyst@example.test', 'analyst']].sort());
    const list = (await req('GET', `/api/v1/workspaces/${ws.id}/invitations`, owner.headers)).json().invitations;
    expect(list.map((i: { status: string }) => i.status).sort()).toEqual(['accepted', 'pending']);
  });

  it('refuses an invitation for another address, and a revoked one', async () => {
    const owner = await buildUser(t.app);
    const intruder = await buildUser(t.app);
    const ws = await buildWorkspace(t.app, owner);
    const { WorkspaceService } = await import('../src/modules/workspaces/service.js');
    const service = new WorkspaceService(t.app.platform);
    const invitation = await service.invite(ws.id, 'someone-else@example.test', 'viewer', owner.id);
    expect((await req('POST', '/api/v1/invitations/accept', intruder.headers, { invitationCode: invitation.token })).json().error.code).toBe('SIQ_INVITATION_INVALID');
    const second = await service.invite(ws.id, intruder.email, 'viewer', owner.id);
    expect((await req('DELETE', `/api/v1/workspaces/${ws.id}/invitations/${second.id}`, owner.headers)).statusCode).toBe(204);
    expect((await req('POST', '/api/v1/invitations/accept', intruder.headers, { invitationCode: second.token })).json().error.code).toBe('SIQ_INVITATION_INVALID');
  });

  it('enforces roles: viewers read, analysts cannot manage members, admins cannot delete, the last owner stays', async () => {
    const owner = await buildUser(t.app);
    const [viewer, analyst, admin] = [await buildUser(t.app), await buildUser(t.app), await buildUser(t.app)];
    const ws = await buildWorkspace(t.app, owner);
    await addMember(t.app, ws.id, owner, viewer, 'viewer');
    await addMember(t.app, ws.id, owner, analyst, 'analyst');
    await addMember(t.app, ws.id, owner, admin, 'admin');

    expect((await req('GET', `/api/v1/workspaces/${ws.id}/members`, viewer.headers)).statusCode).toBe(200);
    expect((await req('PATCH', `/api/v1/workspaces/${ws.id}`, viewer.headers, { name: 'x' })).json().error.code).toBe('SIQ_FORBIDDEN');
    expect((await req('POST', `/api/v1/workspaces/${ws.id}/invitations`, analyst.headers, { email: 'a@b.test', role: 'viewer' })).json().error.code).toBe('SIQ_FORBIDDEN');
    expect((await req('POST', `/api/v1/workspaces/${ws.id}/invitations`, admin.headers, { email: 'a@b.test', role: 'viewer' })).statusCode).toBe(201);
    expect((await req('DELETE', `/api/v1/workspaces/${ws.id}`, admin.headers)).json().error.code).toBe('SIQ_FORBIDDEN');
    expect((await req('PATCH', `/api/v1/workspaces/${ws.id}/members/${viewer.id}`, admin.headers, { role: 'owner' })).json().error.code).toBe('SIQ_FORBIDDEN');

    expect((await req('PATCH', `/api/v1/workspaces/${ws.id}/members/${owner.id}`, owner.headers, { role: 'admin' })).json().error.code).toBe('SIQ_LAST_OWNER');
    expect((await req('DELETE', `/api/v1/workspaces/${ws.id}/members/${owner.id}`, owner.headers)).json().error.code).toBe('SIQ_LAST_OWNER');
    expect((await req('PATCH', `/api/v1/workspaces/${ws.id}/members/${admin.id}`, owner.headers, { role: 'owner' })).statusCode).toBe(200);
    expect((await req('DELETE', `/api/v1/workspaces/${ws.id}/members/${owner.id}`, admin.headers)).statusCode).toBe(204);
    const events = await t.app.platform.db.query<{ type: string }>("SELECT type FROM security_events WHERE workspace_id = $1 AND type IN ('member.role_changed', 'member.removed', 'policy.denied')", [ws.id]);
    expect(new Set(events.rows.map((r) => r.type))).toEqual(new Set(['member.role_changed', 'member.removed', 'policy.denied']));
  });
});

describe('API keys', () => {
  it('shows a key once, stores it hashed, scopes what it may do, and stops working when revoked', async () => {
    const owner = await buildUser(t.app);
    const ws = await buildWorkspace(t.app, owner);
    const created = await req('POST', `/api/v1/workspaces/${ws.id}/apikeys`, owner.headers, { name: 'filebeat', scopes: ['read'] });
    expect(created.statusCode).toBe(201);
    const { key, id, prefix } = created.json();
    expect(key).toMatch(/^siq_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{32,}$/);
    expect(key.startsWith(`siq_${prefix}_`)).toBe(true);
    const stored = await t.app.platform.db.query<{ key_hash: string }>('SELECT key_hash FROM api_keys WHERE id = $1', [id]);
    expect(stored.rows[0]!.key_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored.rows[0]!.key_hash).not.toContain(key.slice(13));

    const list = (await req('GET', `/api/v1/workspaces/${ws.id}/apikeys`, owner.headers)).json().apiKeys;
    expect(list).toEqual([expect.objectContaining({ id, name: 'filebeat', prefix: `siq_${prefix}_…`, scopes: ['read'], lastUsedAt: null })]);
    expect(JSON.stringify(list)).not.toContain(key);

    const asKey = { authorization: `Bearer ${key}` };
    expect((await req('GET', `/api/v1/workspaces/${ws.id}`, asKey)).statusCode).toBe(200);
    expect((await req('GET', `/api/v1/workspaces/${ws.id}/members`, { 'x-api-key': key })).statusCode).toBe(200);
    expect((await req('PATCH', `/api/v1/workspaces/${ws.id}`, asKey, { name: 'nope' })).json().error.code).toBe('SIQ_API_KEY_SCOPE');
    expect((await req('GET', '/api/v1/auth/me', asKey)).json().error.code).toBe('SIQ_FORBIDDEN');
    const used = (await req('GET', `/api/v1/workspaces/${ws.id}/apikeys`, owner.headers)).json().apiKeys[0];
    expect(used.lastUsedAt).not.toBeNull();

    expect((await req('DELETE', `/api/v1/workspaces/${ws.id}/apikeys/${id}`, owner.headers)).statusCode).toBe(204);
    expect((await req('GET', `/api/v1/workspaces/${ws.id}`, asKey)).json().error.code).toBe('SIQ_UNAUTHENTICATED');
    expect((await req('GET', `/api/v1/workspaces/${ws.id}`, { authorization: `Bearer ${key.slice(0, -2)}${key.endsWith('xx') ? 'yy' : 'xx'}` })).json().error.code).toBe('SIQ_UNAUTHENTICATED');
  });
});

describe('workspace policies', () => {
  it('adds a deny that takes effect at once, explains it, and lifts it when deleted', async () => {
    const owner = await buildUser(t.app);
    const analyst = await buildUser(t.app);
    const ws = await buildWorkspace(t.app, owner);
    await addMember(t.app, ws.id, owner, analyst, 'analyst');
    const url = `/api/v1/workspaces/${ws.id}/members`;
    expect((await req('GET', url, analyst.headers)).statusCode).toBe(200); // decision now cached

    const bad = await req('POST', `/api/v1/workspaces/${ws.id}/policies`, owner.headers, { name: 'x', effect: 'perhaps', actions: [], resources: ['*'], priority: 1 });
    expect(bad.json().error.code).toBe('SIQ_POLICY_INVALID');
    expect(bad.json().error.details).toEqual(expect.arrayContaining(['effect must be allow or deny']));

    const policy = await req('POST', `/api/v1/workspaces/${ws.id}/policies`, owner.headers, { name: 'analysts may not list members', effect: 'deny', actions: ['members:read'], resources: ['*'], priority: 200, conditions: { roles: ['analyst'] } });
    expect(policy.statusCode).toBe(201);
    expect((await req('GET', url, analyst.headers)).json().error.code).toBe('SIQ_FORBIDDEN');
    expect((await req('GET', url, owner.headers)).statusCode).toBe(200);

    const explained = (await req('POST', `/api/v1/workspaces/${ws.id}/policies/explain`, owner.headers, { action: 'members:read', resource: 'members', userId: analyst.id })).json();
    expect(explained).toMatchObject({ allowed: false, policyId: policy.json().id, policyName: 'analysts may not list members' });
    expect(explained.evaluated.length).toBeGreaterThan(1);

    expect((await req('DELETE', `/api/v1/workspaces/${ws.id}/policies/${policy.json().id}`, owner.headers)).statusCode).toBe(204);
    expect((await req('GET', url, analyst.headers)).statusCode).toBe(200);
    const logged = await t.app.platform.db.query<{ allowed: boolean }>("SELECT allowed FROM policy_audit_logs WHERE workspace_id = $1 AND action = 'members:read' AND allowed = false", [ws.id]);
    expect(logged.rows.length).toBeGreaterThanOrEqual(1);
  });
});

describe('rate limits (in-process cache)', () => {
  it('refuses the 6th workspace creation within an hour with 429 and Retry-After', async () => {
    const user = await buildUser(t.app);
    for (let i = 0; i < 5; i++) {
      const res = await req('POST', '/api/v1/workspaces', user.headers, { name: `w${i}` });
      expect(res.statusCode).toBe(201);
      expect(res.headers['ratelimit-remaining']).toBe(String(4 - i));
    }
    const sixth = await req('POST', '/api/v1/workspaces', user.headers, { name: 'w6' });
    expect(sixth.statusCode).toBe(429);
    expect(sixth.json().error.code).toBe('SIQ_RATE_LIMITED');
    expect(Number(sixth.headers['retry-after'])).toBeGreaterThan(3500);
    expect(sixth.headers['ratelimit-limit']).toBe('5');
    // Another user has a budget of their own.
    const other = await buildUser(t.app);
    expect((await req('POST', '/api/v1/workspaces', other.headers, { name: 'mine' })).statusCode).toBe(201);
  });
});
