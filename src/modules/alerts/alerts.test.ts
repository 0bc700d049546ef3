import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from '../../../test/helpers/app.js';
import { testDatabaseUrl } from '../../../test/helpers/services.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import { AlertService, MAX_EVENT_REFS } from './service.js';
import type { AlertNotice, Detection, EventRef } from './types.js';

const implementations = [
  { name: 'pglite', enabled: true, postgres: false },
  { name: 'postgres', enabled: Boolean(testDatabaseUrl), postgres: true },
];

const T0 = new Date('2030-01-01T10:00:00.000Z');
const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);
const refs = (n: number, prefix = randomUUID().slice(0, 8)): EventRef[] => Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, ts: T0.toISOString() }));

describe.each(implementations)('alerts on $name', ({ enabled, postgres }) => {
  let t: TestApp & { databaseUrl?: string };
  let second: TestApp | undefined;
  let owner: TestUser;
  let analyst: TestUser;
  let viewer: TestUser;
  let outsider: TestUser;
  let ws: { id: string; name: string };
  let other: { id: string; name: string };

  const detection = (over: Partial<Detection> = {}): Detection => ({
    workspaceId: ws.id,
    ruleId: `rule-${randomUUID()}`,
    ruleTitle: 'SSH brute force',
    ruleKind: 'threshold',
    severity: 'medium',
    groupKey: 'host-1',
    events: refs(1),
    at: T0,
    ...over,
  });
  const api = (method: 'GET' | 'PATCH' | 'POST', path: string, user: TestUser, payload?: object, workspaceId = ws.id) =>
    t.app.inject({ method, url: `/api/v1/workspaces/${workspaceId}/alerts${path}`, headers: user.headers, ...(payload ? { payload } : {}) });

  beforeAll(async () => {
    if (!enabled) return;
    t = await buildTestApp({}, { postgres });
    // A second instance on the same database, as two processes behind a load balancer.
    if (postgres) second = await buildTestApp({ DATABASE_URL: t.databaseUrl! });
    owner = await buildUser(t.app);
    analyst = await buildUser(t.app);
    viewer = await buildUser(t.app);
    outsider = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner, 'Alerts SOC');
    other = await buildWorkspace(t.app, outsider, 'Other SOC');
    await addMember(t.app, ws.id, owner, analyst, 'analyst');
    await addMember(t.app, ws.id, owner, viewer, 'viewer');
    await t.app.platform.db.exec(`
      CREATE TABLE IF NOT EXISTS alert_test_outbox (alert_id uuid NOT NULL, workspace_id uuid NOT NULL);
      DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN GRANT SELECT, INSERT ON alert_test_outbox TO siq_tenant; END IF;
      END $$;`);
  });
  afterAll(async () => {
    await second?.close();
    if (enabled) await t.close();
  });

  it.skipIf(!enabled)('raise creates an alert; a repeat within the window aggregates (count, refs, last_seen, max severity)', async () => {
    const first = detection({ events: refs(2, 'a') });
    const created = await t.app.alerts.raise(first);
    expect(created.created).toBe(true);
    expect(created.alert).toMatchObject({ workspaceId: ws.id, ruleId: first.ruleId, groupKey: 'host-1', status: 'new', severity: 'medium', count: 1, aggregating: true, firstSeen: T0.toISOString(), lastSeen: T0.toISOString(), title: 'SSH brute force — host-1' });
    expect(created.alert.eventRefs.map((r) => r.id)).toEqual(['a-0', 'a-1']);

    const repeat = await t.app.alerts.raise({ ...first, severity: 'high', at: minutes(10), events: [{ id: 'a-1', ts: T0.toISOString() }, { id: 'b-0', ts: minutes(10).toISOString() }] });
    expect(repeat.created).toBe(false);
    expect(repeat.alert).toMatchObject({ id: created.alert.id, count: 2, severity: 'high', firstSeen: T0.toISOString(), lastSeen: minutes(10).toISOString() });
    expect(repeat.alert.eventRefs.map((r) => r.id)).toEqual(['a-0', 'a-1', 'b-0']);

    // A lower severity later does not lower the alert's.
    const third = await t.app.alerts.raise({ ...first, severity: 'low', at: minutes(20) });
    expect(third.alert).toMatchObject({ id: created.alert.id, count: 3, severity: 'high' });
    const history = await t.app.alerts.history(ws.id, created.alert.id);
    expect(history.map((h) => [h.action, h.from, h.to])).toEqual([['created', null, 'new'], ['severity', 'medium', 'high']]);
  });

  it.skipIf(!enabled)('a different group key, rule or workspace gets its own alert', async () => {
    const d = detection();
    const a = await t.app.alerts.raise(d);
    const b = await t.app.alerts.raise({ ...d, groupKey: 'host-2' });
    const c = await t.app.alerts.raise({ ...d, ruleId: `${d.ruleId}-x` });
    const e = await t.app.alerts.raise({ ...d, workspaceId: other.id });
    expect([a.created, b.created, c.created, e.created]).toEqual([true, true, true, true]);
    expect(new Set([a.alert.id, b.alert.id, c.alert.id, e.alert.id]).size).toBe(4);
  });

  it.skipIf(!enabled)('after resolve (or false positive) a new raise creates a new alert', async () => {
    const d = detection();
    const a = await t.app.alerts.raise(d);
    await t.app.alerts.transition(ws.id, a.alert.id, 'resolved', { userId: owner.id });
    const b = await t.app.alerts.raise({ ...d, at: minutes(1) });
    expect(b.created).toBe(true);
    expect(b.alert.id).not.toBe(a.alert.id);
    await t.app.alerts.transition(ws.id, b.alert.id, 'false_positive', { userId: owner.id });
    const c = await t.app.alerts.raise({ ...d, at: minutes(2) });
    expect(c.created).toBe(true);
    expect(new Set([a.alert.id, b.alert.id, c.alert.id]).size).toBe(3);
    // Reopening an alert does not make it aggregate again: repeats keep going to the newest one.
    const reopened = await t.app.alerts.transition(ws.id, a.alert.id, 'in_progress', { userId: owner.id });
    expect(reopened).toMatchObject({ status: 'in_progress', aggregating: false, resolvedAt: null });
    const d2 = await t.app.alerts.raise({ ...d, at: minutes(3) });
    expect(d2).toMatchObject({ created: false, alert: { id: c.alert.id, count: 2 } });
  });

  it.skipIf(!enabled)('after the aggregation window a raise creates a new alert; the old one stays open', async () => {
    const service = new AlertService(t.app.platform, { aggregateWindowMs: 30 * 60_000 });
    const d = detection();
    const a = await service.raise(d);
    const inside = await service.raise({ ...d, at: minutes(29) });
    expect(inside).toMatchObject({ created: false, alert: { id: a.alert.id, count: 2 } });
    const after = await service.raise({ ...d, at: minutes(30) });
    expect(after.created).toBe(true);
    expect(after.alert.id).not.toBe(a.alert.id);
    const old = await service.get(ws.id, a.alert.id);
    expect(old).toMatchObject({ status: 'new', aggregating: false, count: 2 });
    const next = await service.raise({ ...d, at: minutes(31) });
    expect(next).toMatchObject({ created: false, alert: { id: after.alert.id, count: 2 } });
    // The default window is an hour.
    const e = detection();
    const x = await t.app.alerts.raise(e);
    expect((await t.app.alerts.raise({ ...e, at: minutes(59) })).alert.id).toBe(x.alert.id);
    expect((await t.app.alerts.raise({ ...e, at: minutes(61) })).created).toBe(true);
  });

  it.skipIf(!enabled)(`keeps at most ${MAX_EVENT_REFS} event references while count keeps counting; raiseMany counts each detection`, async () => {
    const d = detection({ events: refs(150, 'p') });
    const a = await t.app.alerts.raise(d);
    const results = await t.app.alerts.raiseMany([
      { ...d, at: minutes(1), events: refs(100, 'q') },
      { ...d, groupKey: 'host-9', at: minutes(1) },
      { ...d, at: minutes(2), events: refs(5, 'r') },
    ]);
    expect(results.map((r) => r.created)).toEqual([false, true, false]);
    expect(results[0]!.alert.id).toBe(a.alert.id);
    const alert = await t.app.alerts.get(ws.id, a.alert.id);
    expect(alert.count).toBe(3);
    expect(alert.eventRefs).toHaveLength(MAX_EVENT_REFS);
    expect(alert.eventRefs[0]!.id).toBe('p-0');
    expect(alert.eventRefs.at(-1)!.id).toBe('q-49');
    expect(alert.lastSeen).toBe(minutes(2).toISOString());
  });

  it.skipIf(!enabled)('parallel raises of one rule and group key (across instances) create exactly one alert', async () => {
    const d = detection();
    const services = [t.app.alerts, new AlertService(t.app.platform), ...(second ? [second.app.alerts] : [])];
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => services[i % services.length]!.raise({ ...d, events: refs(1, `par${i}`), at: minutes(i % 5) })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.alert.id)).size).toBe(1);
    const { rows } = await t.app.platform.db.query<{ n: number; total: number }>('SELECT count(*)::int AS n, sum(count)::int AS total FROM alerts WHERE workspace_id = $1 AND rule_id = $2', [ws.id, d.ruleId]);
    expect(rows[0]).toEqual({ n: 1, total: 24 });
    const alert = await t.app.alerts.get(ws.id, results[0]!.alert.id);
    expect(alert.eventRefs).toHaveLength(24);
  });

  it.skipIf(!enabled || !postgres)('a raise that meets an uncommitted insert of the same key waits, then aggregates into it', async () => {
    const d = detection();
    const id = randomUUID();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let signalInserted!: () => void;
    const inserted = new Promise<void>((resolve) => (signalInserted = resolve));
    const holder = t.app.platform.db.transaction(async (tx) => {
      await tx.query("INSERT INTO alerts (id, workspace_id, rule_id, rule_title, rule_kind, group_key, title, severity, first_seen, last_seen) VALUES ($1, $2, $3, 'held', 'threshold', $4, 'held', 'low', $5, $5)", [id, ws.id, d.ruleId, d.groupKey, T0]);
      signalInserted();
      await released;
    });
    await inserted;
    const raising = t.app.alerts.raise({ ...d, at: minutes(1) });
    // Wait until the raise is blocked on the other transaction's row, then commit that one.
    for (let i = 0; i < 500; i++) {
      const { rows } = await t.app.platform.db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
      if (rows[0]!.n > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    release();
    await holder;
    const result = await raising;
    expect(result).toMatchObject({ created: false, alert: { id, count: 2, severity: 'medium', lastSeen: minutes(1).toISOString() } });
  });

  it.skipIf(!enabled)('onRaised runs once per new alert inside the transaction (also under concurrency), and rolls back with it', async () => {
    const notices: AlertNotice[] = [];
    const outbox = (tx: { query: (sql: string, params: unknown[]) => Promise<unknown> }, notice: AlertNotice) => tx.query('INSERT INTO alert_test_outbox (alert_id, workspace_id) VALUES ($1, $2)', [notice.id, notice.workspaceId]);
    const service = new AlertService(t.app.platform, {
      onRaised: async (tx, notice) => {
        await outbox(tx, notice);
        notices.push(notice);
      },
    });
    const d = detection({ severity: 'critical', tags: ['attack.t1110'] });
    await service.raise(d);
    await service.raise({ ...d, at: minutes(1) });
    await Promise.all(Array.from({ length: 8 }, (_, i) => service.raise({ ...d, at: minutes(2 + i) })));
    await service.raise({ ...d, groupKey: 'host-2' });
    expect(notices).toHaveLength(2);
    expect(notices[0]).toMatchObject({ workspaceId: ws.id, ruleId: d.ruleId, ruleTitle: 'SSH brute force', ruleKind: 'threshold', severity: 'critical', groupKey: 'host-1', status: 'new', count: 1, tags: ['attack.t1110'] });
    const rows = (await t.app.platform.db.query<{ alert_id: string }>('SELECT alert_id FROM alert_test_outbox WHERE alert_id = ANY($1::uuid[])', [notices.map((n) => n.id)])).rows;
    expect(rows.map((r) => r.alert_id).sort()).toEqual(notices.map((n) => n.id).sort());

    const failing = new AlertService(t.app.platform, {
      onRaised: async (tx, notice) => {
        await outbox(tx, notice);
        throw new Error('outbox full');
      },
    });
    const f = detection();
    await expect(failing.raise(f)).rejects.toThrow('outbox full');
    const left = await t.app.platform.db.query('SELECT 1 FROM alerts WHERE rule_id = $1', [f.ruleId]);
    expect(left.rows).toHaveLength(0);
    const leftOutbox = await t.app.platform.db.query('SELECT count(*)::int AS n FROM alert_test_outbox');
    expect(leftOutbox.rows[0]).toEqual({ n: 2 });
  });

  it.skipIf(!enabled)('lifecycle over HTTP: valid transitions pass, invalid ones answer 409 SIQ_ALERT_TRANSITION, viewers may not change', async () => {
    const { alert } = await t.app.alerts.raise(detection());
    const patch = (status: string, user: TestUser = analyst) => api('PATCH', `/${alert.id}`, user, { status });

    expect((await patch('acknowledged', viewer)).statusCode).toBe(403);
    const steps: Array<[string, number]> = [
      ['new', 409],
      ['acknowledged', 200],
      ['acknowledged', 409],
      ['new', 409],
      ['in_progress', 200],
      ['acknowledged', 409],
      ['resolved', 200],
      ['false_positive', 409],
      ['in_progress', 200],
      ['false_positive', 200],
      ['resolved', 409],
    ];
    for (const [status, expected] of steps) {
      const res = await patch(status);
      expect(res.statusCode, `${status}: ${res.body}`).toBe(expected);
      if (expected === 409) expect(res.json().error.code).toBe('SIQ_ALERT_TRANSITION');
      else expect(res.json().status).toBe(status);
    }
    const direct = await t.app.alerts.raise(detection());
    const res = await api('PATCH', `/${direct.alert.id}`, owner, { status: 'resolved' });
    expect(res.json()).toMatchObject({ status: 'resolved', aggregating: false, resolvedAt: expect.any(String) });
    expect((await api('PATCH', `/${direct.alert.id}`, owner, { status: 'closed' })).json().error.code).toBe('SIQ_VALIDATION');
    expect((await api('PATCH', `/${direct.alert.id}`, owner, {})).json().error.code).toBe('SIQ_VALIDATION');
    expect((await api('PATCH', `/${randomUUID()}`, owner, { status: 'resolved' })).statusCode).toBe(404);
    expect((await api('PATCH', '/not-an-id', owner, { status: 'resolved' })).statusCode).toBe(404);
  });

  it.skipIf(!enabled)('assignee must be a member of the workspace; null unassigns; a failed PATCH changes nothing', async () => {
    const { alert } = await t.app.alerts.raise(detection());
    const outsiderRes = await api('PATCH', `/${alert.id}`, owner, { assigneeId: outsider.id });
    expect(outsiderRes.statusCode).toBe(400);
    expect(outsiderRes.json().error.code).toBe('SIQ_ALERT_ASSIGNEE');
    expect((await api('PATCH', `/${alert.id}`, owner, { assigneeId: 'nobody' })).json().error.code).toBe('SIQ_ALERT_ASSIGNEE');

    const assigned = await api('PATCH', `/${alert.id}`, owner, { assigneeId: analyst.id });
    expect(assigned.statusCode).toBe(200);
    expect(assigned.json().assigneeId).toBe(analyst.id);

    // Atomic: the valid unassignment is not kept when the transition in the same PATCH fails.
    const mixed = await api('PATCH', `/${alert.id}`, owner, { assigneeId: null, status: 'new' });
    expect(mixed.json().error.code).toBe('SIQ_ALERT_TRANSITION');
    expect((await api('GET', `/${alert.id}`, owner)).json().assigneeId).toBe(analyst.id);

    const unassigned = await api('PATCH', `/${alert.id}`, owner, { assigneeId: null });
    expect(unassigned.json().assigneeId).toBeNull();
    const history = (await api('GET', `/${alert.id}/history`, owner)).json().entries as Array<{ action: string; from: string | null; to: string | null; actorUserId: string }>;
    expect(history.filter((h) => h.action === 'assignment').map((h) => [h.from, h.to, h.actorUserId])).toEqual([[null, analyst.id, owner.id], [analyst.id, null, owner.id]]);
  });

  it.skipIf(!enabled)('comments and history over HTTP, recorded with actor and time; the history is append-only', async () => {
    const { alert } = await t.app.alerts.raise(detection({ events: refs(3, 'c') }));
    const comment = await api('POST', `/${alert.id}/comments`, analyst, { text: 'Looking into host-1' });
    expect(comment.statusCode).toBe(201);
    expect(comment.json()).toMatchObject({ alertId: alert.id, authorUserId: analyst.id, authorEmail: analyst.email, text: 'Looking into host-1', createdAt: expect.any(String) });
    expect((await api('POST', `/${alert.id}/comments`, analyst, { text: '   ' })).json().error.code).toBe('SIQ_VALIDATION');
    expect((await api('POST', `/${alert.id}/comments`, viewer, { text: 'viewer note' })).statusCode).toBe(403);

    const patched = await api('PATCH', `/${alert.id}`, analyst, { status: 'in_progress', assigneeId: analyst.id, comment: 'Taking it' });
    expect(patched.statusCode).toBe(200);

    const got = (await api('GET', `/${alert.id}`, viewer)).json();
    expect(got).toMatchObject({ id: alert.id, status: 'in_progress', assigneeId: analyst.id, count: 1 });
    expect(got.eventRefs.map((r: EventRef) => r.id)).toEqual(['c-0', 'c-1', 'c-2']);
    expect(got.comments.map((c: { text: string }) => c.text)).toEqual(['Looking into host-1', 'Taking it']);

    const history = await api('GET', `/${alert.id}/history`, viewer);
    expect(history.statusCode).toBe(200);
    const entries = history.json().entries as Array<{ action: string; actorUserId: string | null; from: string | null; to: string | null; at: string }>;
    expect(entries.map((e) => e.action)).toEqual(['created', 'comment', 'assignment', 'status', 'comment']);
    expect(entries[0]!.actorUserId).toBeNull();
    expect(entries.slice(1).every((e) => e.actorUserId === analyst.id && !Number.isNaN(Date.parse(e.at)))).toBe(true);
    expect(entries[3]).toMatchObject({ from: 'new', to: 'in_progress' });

    const audit = await t.app.platform.db.query<{ action: string }>("SELECT action FROM audit_logs WHERE workspace_id = $1 AND resource = 'alert' AND resource_id = $2 ORDER BY seq", [ws.id, alert.id]);
    expect(audit.rows.map((r) => r.action)).toEqual(['alert.comment', 'alert.update']);

    await expect(t.app.platform.db.query('UPDATE alert_history SET action = $1 WHERE alert_id = $2', ['status', alert.id])).rejects.toThrow(/append-only/);
    await expect(t.app.platform.db.query('DELETE FROM alert_history WHERE alert_id = $1', [alert.id])).rejects.toThrow(/append-only/);
  });

  it.skipIf(!enabled)('lists with filters (status, severity, rule, assignee, time, text) and cursor pagination, newest last_seen first', async () => {
    const fws = await buildWorkspace(t.app, owner, 'Filters');
    await addMember(t.app, fws.id, owner, analyst, 'analyst');
    const mk = (ruleId: string, severity: Detection['severity'], groupKey: string, at: Date, ruleTitle = 'Rule') => t.app.alerts.raise({ workspaceId: fws.id, ruleId, ruleTitle, ruleKind: 'sigma', severity, groupKey, events: [], at });
    const a = (await mk('r1', 'low', 'alpha', minutes(1))).alert;
    const b = (await mk('r1', 'high', 'bravo', minutes(2))).alert;
    const c = (await mk('r2', 'critical', 'charlie', minutes(3), 'Mimikatz detected')).alert;
    const d = (await mk('r2', 'medium', 'delta', minutes(4))).alert;
    const e = (await mk('r3', 'informational', 'echo', minutes(5))).alert;
    await t.app.alerts.transition(fws.id, b.id, 'acknowledged', { userId: owner.id });
    await t.app.alerts.transition(fws.id, c.id, 'resolved', { userId: owner.id });
    await t.app.alerts.assign(fws.id, d.id, analyst.id, { userId: owner.id });

    const ids = async (query: string, user: TestUser = owner) => {
      const res = await api('GET', query, user, undefined, fws.id);
      expect(res.statusCode, res.body).toBe(200);
      return (res.json().alerts as Array<{ id: string }>).map((x) => x.id);
    };
    expect(await ids('')).toEqual([e.id, d.id, c.id, b.id, a.id]);
    expect(await ids('?status=new')).toEqual([e.id, d.id, a.id]);
    expect(await ids('?status=acknowledged&status=resolved')).toEqual([c.id, b.id]);
    expect(await ids('?status=acknowledged,resolved')).toEqual([c.id, b.id]);
    expect(await ids('?severity=low&severity=critical')).toEqual([c.id, a.id]);
    expect(await ids('?minSeverity=high')).toEqual([c.id, b.id]);
    expect(await ids('?ruleId=r1')).toEqual([b.id, a.id]);
    expect(await ids('?assignee=me', analyst)).toEqual([d.id]);
    expect(await ids(`?assignee=${analyst.id}`)).toEqual([d.id]);
    expect(await ids('?assignee=none')).toEqual([e.id, c.id, b.id, a.id]);
    expect(await ids(`?from=${minutes(2).toISOString()}&to=${minutes(4).toISOString()}`)).toEqual([c.id, b.id]);
    expect(await ids('?q=mimikatz')).toEqual([c.id]);
    expect(await ids('?q=ECHO')).toEqual([e.id]);
    expect(await ids('?q=%25')).toEqual([]);
    expect((await api('GET', '?status=open', owner, undefined, fws.id)).json().error.code).toBe('SIQ_VALIDATION');

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await api('GET', `?limit=2${cursor ? `&cursor=${cursor}` : ''}`, owner, undefined, fws.id);
      const body = res.json() as { alerts: Array<{ id: string }>; nextCursor: string | null };
      seen.push(...body.alerts.map((x) => x.id));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([e.id, d.id, c.id, b.id, a.id]);
    expect((await api('GET', '?cursor=garbage', owner, undefined, fws.id)).json().error.code).toBe('SIQ_VALIDATION');
  });

  it.skipIf(!enabled)('refuses other workspaces: their members, their API keys, and mismatched alert and workspace ids', async () => {
    const { alert } = await t.app.alerts.raise(detection({ ruleTitle: 'Secret rule title' }));
    const foreignKey = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${other.id}/apikeys`, headers: outsider.headers, payload: { name: 'k', scopes: ['admin'] } })).json().key as string;
    const keyUser = { headers: { authorization: `Bearer ${foreignKey}` } } as TestUser;

    for (const user of [outsider, keyUser]) {
      for (const [method, path, payload] of [['GET', ''], ['GET', `/${alert.id}`], ['GET', `/${alert.id}/history`], ['PATCH', `/${alert.id}`, { status: 'resolved' }], ['POST', `/${alert.id}/comments`, { text: 'x' }]] as const) {
        const direct = await api(method, path, user, payload);
        expect(direct.statusCode, `${method} ${path}`).toBe(404);
        expect(direct.body).not.toContain('Secret rule title');
        // Through the caller's own workspace, the alert id of another workspace does not exist.
        if (path) {
          const via = await api(method, path, user, payload, other.id);
          expect(via.statusCode, `${method} ${path} via own workspace`).toBe(404);
          expect(via.body).not.toContain('Secret rule title');
        }
      }
    }
    expect((await t.app.alerts.get(ws.id, alert.id)).status).toBe('new');
    const visible = await withWorkspace(t.app.platform.db, other.id, async (tx) => (await tx.query('SELECT id FROM alerts WHERE id = $1', [alert.id])).rows);
    expect(visible).toEqual([]);
  });

  it.skipIf(!enabled)('deleting a workspace removes its alerts and comments; the append-only history does not block it', async () => {
    const gone = await buildWorkspace(t.app, owner, 'Short-lived');
    const { alert } = await t.app.alerts.raise({ ...detection(), workspaceId: gone.id });
    await t.app.alerts.comment(gone.id, alert.id, 'note', { userId: owner.id });
    const res = await t.app.inject({ method: 'DELETE', url: `/api/v1/workspaces/${gone.id}`, headers: owner.headers });
    expect(res.statusCode).toBe(204);
    const left = await t.app.platform.db.query<{ alerts: number; comments: number; history: number }>(
      'SELECT (SELECT count(*)::int FROM alerts WHERE workspace_id = $1) AS alerts, (SELECT count(*)::int FROM alert_comments WHERE workspace_id = $1) AS comments, (SELECT count(*)::int FROM alert_history WHERE workspace_id = $1) AS history',
      [gone.id],
    );
    expect(left.rows[0]).toEqual({ alerts: 0, comments: 0, history: 2 });
  });
});
