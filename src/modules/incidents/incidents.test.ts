import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from '../../../test/helpers/app.js';
import { testDatabaseUrl } from '../../../test/helpers/services.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import type { EventRef } from '../alerts/types.js';
import { extractObservables } from './observables.js';

const implementations = [
  { name: 'pglite', enabled: true, postgres: false },
  { name: 'postgres', enabled: Boolean(testDatabaseUrl), postgres: true },
];

const SYSMON_HASHES = 'SHA1=6BE5B5C6A4A3F1B0B5E4C4F9E1E0D3C2B1A09F8E,MD5=0D3C2B1A09F8E7D6C5B4A3F2E1D0C9B8,SHA256=E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855,IMPHASH=1234567890ABCDEF1234567890ABCDEF';

describe('observable extraction', () => {
  it('finds addresses, users, hosts, URLs with their domains, and hashes (Sysmon Hashes, process.hash.*)', () => {
    const found = extractObservables({
      'source.ip': '10.1.2.3', 'destination.ip': '::ffff:198.51.100.7', 'user.name': 'alice', 'host.name': 'WS-01',
      'url.full': 'https://evil.example.com/payload.exe', Hashes: SYSMON_HASHES, 'process.hash.sha1': 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      'dns.question.name': 'c2.example.net.', 'client.ip': '127.0.0.1', 'server.ip': 'not-an-ip', 'user.id': '-',
    });
    const pairs = found.map((o) => `${o.type}:${o.value}`).sort();
    expect(pairs).toEqual([
      'domain:c2.example.net', 'domain:evil.example.com',
      'hash:0d3c2b1a09f8e7d6c5b4a3f2e1d0c9b8', 'hash:6be5b5c6a4a3f1b0b5e4c4f9e1e0d3c2b1a09f8e', 'hash:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'hash:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'host:WS-01', 'ip:10.1.2.3', 'ip:198.51.100.7', 'url:https://evil.example.com/payload.exe', 'user:alice',
    ]);
  });
});

describe.each(implementations)('incidents on $name', ({ enabled, postgres }) => {
  let t: TestApp;
  let owner: TestUser;
  let analyst: TestUser;
  let viewer: TestUser;
  let outsider: TestUser;
  let ws: { id: string };
  let other: { id: string };
  const url = (path: string, workspaceId = ws.id) => `/api/v1/workspaces/${workspaceId}${path}`;
  const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, user: TestUser, payload?: object, workspaceId?: string) =>
    t.app.inject({ method, url: url(path, workspaceId), headers: user.headers, ...(payload ? { payload } : {}) });

  /** Stores events and returns their refs, as detection would have put them on an alert. */
  async function storeEvents(workspaceId: string, events: Array<Record<string, unknown>>): Promise<EventRef[]> {
    const marker = randomUUID();
    const results = await t.app.ingest.ingest(workspaceId, 'test', events.map((e) => ({ value: { ...e, marker } })));
    expect(results.every((r) => r.status === 'stored')).toBe(true);
    const { rows } = await t.app.platform.db.query<{ id: string; ts: Date }>("SELECT id, ts FROM events WHERE workspace_id = $1 AND doc ->> 'marker' = $2 ORDER BY ts", [workspaceId, marker]);
    expect(rows).toHaveLength(events.length);
    return rows.map((r) => ({ id: r.id, ts: r.ts.toISOString() }));
  }

  async function raiseAlert(workspaceId: string, events: EventRef[], title = 'Suspicious process', tags: string[] = []): Promise<string> {
    const { alert } = await t.app.alerts.raise({ workspaceId, ruleId: `rule-${randomUUID()}`, ruleTitle: title, ruleKind: 'sigma', severity: 'high', groupKey: '', events, at: new Date(), tags });
    return alert.id;
  }

  beforeAll(async () => {
    if (!enabled) return;
    t = await buildTestApp({}, { postgres });
    owner = await buildUser(t.app);
    analyst = await buildUser(t.app);
    viewer = await buildUser(t.app);
    outsider = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner, 'Incidents SOC');
    other = await buildWorkspace(t.app, outsider, 'Other SOC');
    await addMember(t.app, ws.id, owner, analyst, 'analyst');
    await addMember(t.app, ws.id, owner, viewer, 'viewer');
  });
  afterAll(async () => {
    if (enabled) await t.close();
  });

  it.skipIf(!enabled)('creates an incident by hand and walks the lifecycle; other transitions are refused with 409 SIQ_INCIDENT_TRANSITION', async () => {
    const created = await call('POST', '/incidents', analyst, { title: 'Phishing wave', description: 'Several users clicked', severity: 'medium', tags: ['phishing'], techniques: ['T1566', 't1566.001'] });
    expect(created.statusCode).toBe(201);
    const incident = created.json();
    expect(incident).toMatchObject({ title: 'Phishing wave', status: 'open', severity: 'medium', tags: ['phishing'], techniques: ['T1566', 'T1566.001'], alertIds: [], createdBy: analyst.id });

    const skip = await call('PATCH', `/incidents/${incident.id}`, analyst, { status: 'resolved' });
    expect(skip.statusCode).toBe(409);
    expect(skip.json().error.code).toBe('SIQ_INCIDENT_TRANSITION');

    for (const status of ['investigating', 'contained', 'resolved', 'closed']) {
      const res = await call('PATCH', `/incidents/${incident.id}`, analyst, { status });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().status).toBe(status);
    }
    const closed = await call('GET', `/incidents/${incident.id}`, viewer);
    expect(closed.json().closedAt).not.toBeNull();
    const reopened = await call('PATCH', `/incidents/${incident.id}`, analyst, { status: 'investigating' });
    expect(reopened.json()).toMatchObject({ status: 'investigating', closedAt: null });
    const backwards = await call('PATCH', `/incidents/${incident.id}`, analyst, { status: 'open' });
    expect(backwards.json().error.code).toBe('SIQ_INCIDENT_TRANSITION');

    const timeline = (await call('GET', `/incidents/${incident.id}/timeline`, viewer)).json().entries;
    expect(timeline.map((e: { action: string }) => e.action)).toEqual(['created', 'status', 'status', 'status', 'status', 'status']);
    expect(timeline[1]).toMatchObject({ actorUserId: analyst.id, actorEmail: analyst.email, details: { from: 'open', to: 'investigating' } });
  });

  it.skipIf(!enabled)('validates ATT&CK ids, assignees and task owners (members only), and roles', async () => {
    const bad = await call('POST', '/incidents', analyst, { title: 'x', techniques: ['T59'] });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('SIQ_VALIDATION');
    const noTitle = await call('POST', '/incidents', analyst, {});
    expect(noTitle.json().error.code).toBe('SIQ_VALIDATION');
    const byViewer = await call('POST', '/incidents', viewer, { title: 'nope' });
    expect(byViewer.statusCode).toBe(403);

    const incident = (await call('POST', '/incidents', analyst, { title: 'Assignment' })).json();
    const stranger = await call('PATCH', `/incidents/${incident.id}`, analyst, { assigneeId: outsider.id });
    expect(stranger.statusCode).toBe(400);
    expect(stranger.json().error.code).toBe('SIQ_INCIDENT_ASSIGNEE');
    const assigned = await call('PATCH', `/incidents/${incident.id}`, analyst, { assigneeId: analyst.id, severity: 'critical', techniques: ['T1059.001'] });
    expect(assigned.json()).toMatchObject({ assigneeId: analyst.id, severity: 'critical', techniques: ['T1059.001'] });

    const badTask = await call('POST', `/incidents/${incident.id}/tasks`, analyst, { title: 'Reimage', ownerId: outsider.id });
    expect(badTask.json().error.code).toBe('SIQ_INCIDENT_ASSIGNEE');
    const task = await call('POST', `/incidents/${incident.id}/tasks`, analyst, { title: 'Reimage WS-01', ownerId: viewer.id });
    expect(task.statusCode).toBe(201);
    const done = await call('PATCH', `/incidents/${incident.id}/tasks/${task.json().id}`, analyst, { status: 'done' });
    expect(done.json()).toMatchObject({ status: 'done', ownerId: viewer.id });
    expect(done.json().completedAt).not.toBeNull();
    const comment = await call('POST', `/incidents/${incident.id}/comments`, analyst, { text: 'Host isolated.' });
    expect(comment.statusCode).toBe(201);

    const detail = (await call('GET', `/incidents/${incident.id}`, viewer)).json();
    expect(detail.tasks).toHaveLength(1);
    expect(detail.comments.map((c: { text: string }) => c.text)).toEqual(['Host isolated.']);
    const actions = (await call('GET', `/incidents/${incident.id}/timeline`, viewer)).json().entries.map((e: { action: string }) => e.action);
    expect(actions).toEqual(['created', 'severity', 'updated', 'assignment', 'task_created', 'task_updated', 'comment']);
  });

  it.skipIf(!enabled)('an incident from alerts takes their title and severity and extracts observables from their events; unlinking removes what only that alert carried', async () => {
    const refsA = await storeEvents(ws.id, [
      { '@timestamp': new Date().toISOString(), Channel: 'Microsoft-Windows-Sysmon/Operational', EventID: 1, Hostname: 'WS-01', User: 'CORP\\alice', Image: 'C:\\Temp\\evil.exe', Hashes: SYSMON_HASHES, message: 'process created' },
      { '@timestamp': new Date().toISOString(), 'source.ip': '203.0.113.9', 'destination.ip': '10.0.0.5', 'user.name': 'alice', 'url.full': 'http://bad.example.org/x', message: 'connection' },
    ]);
    const refsB = await storeEvents(ws.id, [{ '@timestamp': new Date().toISOString(), 'source.ip': '198.51.100.77', message: 'another' }]);
    const alertA = await raiseAlert(ws.id, refsA, 'Malware executed', ['attack.execution', 'attack.t1204.002']);
    const alertB = await raiseAlert(ws.id, refsB, 'Scan');

    const res = await call('POST', '/incidents', analyst, { alertIds: [alertA, alertB] });
    expect(res.statusCode, res.body).toBe(201);
    const incident = res.json();
    expect(incident).toMatchObject({ title: 'Malware executed and 1 more alert', severity: 'high', techniques: ['T1204.002'], alertIds: [alertA, alertB] });

    const observables = (await call('GET', `/incidents/${incident.id}/observables`, viewer)).json().observables as Array<{ type: string; value: string; alertIds: string[] }>;
    const pairs = observables.map((o) => `${o.type}:${o.value}`);
    expect(pairs).toEqual(expect.arrayContaining([
      'ip:203.0.113.9', 'ip:10.0.0.5', 'ip:198.51.100.77', 'user:alice', 'user:CORP\\alice', 'host:WS-01', 'url:http://bad.example.org/x', 'domain:bad.example.org',
      'hash:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hash:0d3c2b1a09f8e7d6c5b4a3f2e1d0c9b8',
    ]));
    expect(pairs).not.toContain('hash:1234567890abcdef1234567890abcdef'); // IMPHASH is not a file hash
    expect(observables.find((o) => o.value === '198.51.100.77')!.alertIds).toEqual([alertB]);

    const manual = await call('POST', `/incidents/${incident.id}/observables`, analyst, { type: 'ip', value: '198.51.100.77', note: 'seen on the firewall too' });
    expect(manual.statusCode).toBe(201);
    const badManual = await call('POST', `/incidents/${incident.id}/observables`, analyst, { type: 'ip', value: '999.1.1.1' });
    expect(badManual.json().error.code).toBe('SIQ_VALIDATION');

    const unlinked = await call('DELETE', `/incidents/${incident.id}/alerts/${alertA}`, analyst);
    expect(unlinked.statusCode).toBe(200);
    expect(unlinked.json().observablesRemoved).toBeGreaterThan(5);
    const after = (await call('GET', `/incidents/${incident.id}/observables`, viewer)).json().observables.map((o: { value: string }) => o.value);
    expect(after).toEqual(['198.51.100.77']); // kept: alert B carries it and a person confirmed it
    const relinked = await call('POST', `/incidents/${incident.id}/alerts`, analyst, { alertIds: [alertA, alertB] });
    expect(relinked.json().linked).toEqual([alertA]);
    const actions = (await call('GET', `/incidents/${incident.id}/timeline`, viewer)).json().entries.map((e: { action: string }) => e.action);
    expect(actions).toEqual(['created', 'alert_linked', 'alert_linked', 'observable_added', 'alert_unlinked', 'alert_linked']);

    const missing = await call('POST', '/incidents', analyst, { alertIds: [randomUUID()] });
    expect(missing.statusCode).toBe(404);
  });

  it.skipIf(!enabled)('searches an observable across incidents of the workspace only', async () => {
    const ip = '192.0.2.44';
    const refs = await storeEvents(ws.id, [{ '@timestamp': new Date().toISOString(), 'source.ip': ip, message: 'login' }]);
    const first = (await call('POST', '/incidents', analyst, { alertIds: [await raiseAlert(ws.id, refs, 'Login from rare IP')] })).json();
    const second = (await call('POST', '/incidents', analyst, { title: 'Manual case' })).json();
    await call('POST', `/incidents/${second.id}/observables`, analyst, { type: 'ip', value: ip });
    await call('POST', `/incidents/${second.id}/observables`, analyst, { type: 'domain', value: 'Mixed.Example.COM' });
    // The same IP in another workspace stays there.
    const foreign = (await call('POST', '/incidents', outsider, { title: 'Theirs' }, other.id)).json();
    await call('POST', `/incidents/${foreign.id}/observables`, outsider, { type: 'ip', value: ip }, other.id);

    const res = await call('GET', `/observables?type=ip&value=${ip}`, viewer);
    expect(res.statusCode).toBe(200);
    expect(new Set(res.json().incidents)).toEqual(new Set([first.id, second.id]));
    expect(res.json().observables.every((o: { type: string; value: string }) => o.type === 'ip' && o.value === ip)).toBe(true);
    const domain = await call('GET', '/observables?type=domain&value=mixed.example.com', viewer);
    expect(domain.json().incidents).toEqual([second.id]);
    const untyped = await call('GET', `/observables?value=${ip}`, viewer);
    expect(untyped.json().incidents).toHaveLength(2);
    const theirs = await call('GET', `/observables?type=ip&value=${ip}`, outsider, undefined, other.id);
    expect(theirs.json().incidents).toEqual([foreign.id]);
  });

  it.skipIf(!enabled)('the timeline is append-only in the database itself', async () => {
    const incident = (await call('POST', '/incidents', analyst, { title: 'Append-only' })).json();
    const { db } = t.app.platform;
    await expect(db.query("UPDATE incident_timeline SET summary = 'rewritten' WHERE incident_id = $1", [incident.id])).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM incident_timeline WHERE incident_id = $1', [incident.id])).rejects.toThrow(/append-only/);
    await expect(withWorkspace(db, ws.id, (tx) => tx.query('DELETE FROM incident_timeline WHERE incident_id = $1', [incident.id]))).rejects.toThrow();
    const { rows } = await db.query<{ summary: string }>('SELECT summary FROM incident_timeline WHERE incident_id = $1', [incident.id]);
    expect(rows).toEqual([{ summary: 'incident "Append-only" created' }]);
  });

  it.skipIf(!enabled)('other workspaces\' members cannot see or change incidents', async () => {
    const incident = (await call('POST', '/incidents', analyst, { title: 'Private' })).json();
    for (const [method, path, body] of [['GET', `/incidents/${incident.id}`], ['PATCH', `/incidents/${incident.id}`, { title: 'x' }], ['GET', `/incidents/${incident.id}/timeline`], ['GET', '/incidents']] as const) {
      const res = await call(method, path, outsider, body);
      expect(res.statusCode).toBe(404);
      expect(res.body).not.toContain('Private');
    }
    // Their own workspace in the URL, our incident id: not found either.
    const crossed = await call('GET', `/incidents/${incident.id}`, outsider, undefined, other.id);
    expect(crossed.statusCode).toBe(404);
    const list = await call('GET', '/incidents?status=open&q=Priv', viewer);
    expect(list.json().incidents.map((i: { id: string }) => i.id)).toContain(incident.id);
  });
});
