import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from '../../../test/helpers/app.js';
import { testDatabaseUrl, testRedisUrl, uniqueName } from '../../../test/helpers/services.js';
import type { Database } from '../../platform/db/types.js';
import { schedule, type ScheduledJob } from '../../platform/jobs/scheduler.js';
import { entryHash, GENESIS_HASH, type ChainedFields } from '../audit/chain.js';
import { appendAudit, verifyChain } from '../audit/service.js';
import { auditArchiveKey, LIFECYCLE_JOB, MAINTENANCE_JOB, manifestKeyOf, readArchive, runLifecycle, runMaintenance, startLifecycleJobs, tableArchiveKey, type LifecycleManifest, type LifecycleReport } from './service.js';

const implementations = [
  { name: 'pglite', enabled: true, postgres: false },
  { name: 'postgres', enabled: Boolean(testDatabaseUrl), postgres: true },
];

const DAY = 86_400_000;
const bin = fileURLToPath(new URL('../../../bin/sentineliq.js', import.meta.url));

/** Appends to an audit chain like appendAudit, with a chosen (old) timestamp. Inserts are allowed; only UPDATE/DELETE are refused. */
async function appendAt(db: Database, workspaceId: string, at: Date, action: string): Promise<number> {
  const last = await db.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_logs WHERE workspace_id = $1 ORDER BY seq DESC LIMIT 1', [workspaceId]);
  const prevHash = last.rows[0]?.hash ?? GENESIS_HASH;
  const fields: ChainedFields = { workspaceId, seq: (last.rows[0]?.seq ?? 0) + 1, createdAt: at.toISOString(), userId: null, userEmail: 'old@example.test', apiKeyId: null, action, resource: 'test', resourceId: null, description: `entry at ${at.toISOString()}`, ip: null, userAgent: null, requestId: null, metadata: { n: action } };
  await db.query(
    `INSERT INTO audit_logs (workspace_id, seq, created_at, user_id, user_email, api_key_id, action, resource, resource_id, description, ip, user_agent, request_id, metadata, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
    [fields.workspaceId, fields.seq, fields.createdAt, null, fields.userEmail, null, fields.action, fields.resource, null, fields.description, null, null, null, JSON.stringify(fields.metadata), prevHash, entryHash(prevHash, fields)],
  );
  return fields.seq;
}

async function idOf(db: Database, sql: string, params: unknown[]): Promise<number> {
  return (await db.query<{ id: number }>(`${sql} RETURNING id`, params)).rows[0]!.id;
}

async function objectBytes(t: TestApp, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of (await t.app.platform.objects.get('archives', key)).body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn', ...env } });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

describe.each(implementations)('data lifecycle on $name', ({ enabled, postgres }) => {
  const withRedis = postgres && Boolean(testRedisUrl);
  const shared: Record<string, string> = withRedis ? { REDIS_URL: testRedisUrl!, REDIS_KEY_PREFIX: `${uniqueName('siqlc')}:` } : {};
  const now = new Date();
  const ago = (days: number) => new Date(now.getTime() - days * DAY);
  let t: TestApp & { databaseUrl?: string };
  let db: Database;
  let admin: TestUser;
  let user: TestUser;
  let jobs: ScheduledJob[];
  const chainX = randomUUID();
  const chainY = randomUUID();
  const seeded: Record<string, { old: number[]; kept: number[] }> = {};
  let report: LifecycleReport;

  beforeAll(async () => {
    if (!enabled) return;
    t = await buildTestApp(shared, { postgres });
    db = t.app.platform.db;
    admin = await buildUser(t.app);
    await db.query('UPDATE users SET is_platform_admin = true WHERE id = $1', [admin.id]);
    user = await buildUser(t.app);
    const ws = await buildWorkspace(t.app, user);
    jobs = startLifecycleJobs(t.app.platform);

    // Chain X: four entries past the 90-day retention, two recent ones.
    for (const days of [200, 150, 120, 100]) await appendAt(db, chainX, ago(days), `old-${days}`);
    for (const days of [10, 1]) await appendAt(db, chainX, ago(days), `new-${days}`);
    // Chain Y: every entry is old; the newest stays so the chain can continue.
    for (const days of [300, 250, 200]) await appendAt(db, chainY, ago(days), `old-${days}`);

    const policy = 'INSERT INTO policy_audit_logs (workspace_id, action, resource, allowed, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6)';
    seeded.policy_audit_logs = {
      old: [await idOf(db, policy, [ws.id, 'alerts:read', 'alerts', true, 'role default', ago(120)]), await idOf(db, policy, [null, 'admin', 'x', false, 'denied', ago(95)])],
      kept: [await idOf(db, policy, [ws.id, 'alerts:read', 'alerts', true, 'role default', ago(30)])],
    };
    const security = 'INSERT INTO security_events (workspace_id, type, data, created_at) VALUES ($1, $2, $3, $4)';
    seeded.security_events = {
      old: [await idOf(db, security, [null, 'auth.sign_in_failed', '{"email":"a@b.c"}', ago(400)]), await idOf(db, security, [ws.id, 'policy.denied', '{}', ago(91)])],
      kept: [await idOf(db, security, [ws.id, 'policy.denied', '{}', ago(89)])],
    };
    const alert = "INSERT INTO alerts (workspace_id, rule_id, rule_title, rule_kind, title, severity, status, aggregating, first_seen, last_seen) VALUES ($1, $2, 'R', 'sigma', 'A', 'low', $3, false, now(), now())";
    const closedAlert = (await db.query<{ id: string }>(`${alert} RETURNING id`, [ws.id, 'r1', 'resolved'])).rows[0]!.id;
    const openAlert = (await db.query<{ id: string }>(`${alert} RETURNING id`, [ws.id, 'r2', 'in_progress'])).rows[0]!.id;
    const history = "INSERT INTO alert_history (workspace_id, alert_id, action, created_at) VALUES ($1, $2, 'created', $3)";
    seeded.alert_history = {
      old: [await idOf(db, history, [ws.id, closedAlert, ago(100)]), await idOf(db, history, [ws.id, randomUUID(), ago(100)])],
      kept: [await idOf(db, history, [ws.id, openAlert, ago(100)]), await idOf(db, history, [ws.id, closedAlert, ago(5)])],
    };
    const incident = "INSERT INTO incidents (workspace_id, title, severity, status) VALUES ($1, 'I', 'high', $2) RETURNING id";
    const closedIncident = (await db.query<{ id: string }>(incident, [ws.id, 'closed'])).rows[0]!.id;
    const openIncident = (await db.query<{ id: string }>(incident, [ws.id, 'investigating'])).rows[0]!.id;
    const timeline = "INSERT INTO incident_timeline (workspace_id, incident_id, action, summary, created_at) VALUES ($1, $2, 'created', 's', $3)";
    seeded.incident_timeline = {
      old: [await idOf(db, timeline, [ws.id, closedIncident, ago(200)]), await idOf(db, timeline, [ws.id, randomUUID(), ago(100)])],
      kept: [await idOf(db, timeline, [ws.id, openIncident, ago(200)])],
    };
  });
  afterAll(async () => {
    for (const job of jobs ?? []) job.stop();
    await t?.close();
  });

  it.runIf(enabled)('archives the rows past their retention, verified, and removes only those', async () => {
    report = await runLifecycle(t.app.platform, now);
    const byTable = (table: string) => report.archived.filter((a) => a.table === table && a.workspaceId === null);
    for (const [table, rows] of Object.entries(seeded)) {
      const segments = byTable(table);
      expect(segments, table).toHaveLength(1);
      expect(segments[0]).toMatchObject({ rows: rows.old.length, key: tableArchiveKey(table as 'alert_history', Math.min(...rows.old), Math.max(...rows.old)) });
      // The stored object matches its manifest, and holds exactly the old rows.
      const manifest = JSON.parse((await objectBytes(t, manifestKeyOf(segments[0]!.key))).toString('utf8')) as LifecycleManifest;
      const bytes = await objectBytes(t, segments[0]!.key);
      expect(manifest).toMatchObject({ format: 'siq-lifecycle-ndjson-gzip/1', table, rows: rows.old.length, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
      const archived = gunzipSync(bytes).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: number; created_at: string });
      expect(archived.map((r) => r.id), table).toEqual([...rows.old].sort((a, b) => a - b));
      const left = await db.query<{ id: number }>(`SELECT id FROM ${table} WHERE id = ANY($1::bigint[]) ORDER BY id`, [[...rows.old, ...rows.kept]]);
      expect(left.rows.map((r) => r.id), table).toEqual([...rows.kept].sort((a, b) => a - b));
    }
    expect(report.maintenance).toContain(postgres ? 'VACUUM (ANALYZE) audit_logs' : 'ANALYZE audit_logs');
  });

  it.runIf(enabled)('cuts each audit chain with an anchor; the chain still verifies, from the API and the CLI', async () => {
    const x = report.archived.find((a) => a.workspaceId === chainX)!;
    expect(x).toMatchObject({ table: 'audit_logs', rows: 4, key: auditArchiveKey(chainX, 1, 4) });
    expect(report.archived.find((a) => a.workspaceId === chainY)).toMatchObject({ rows: 2, key: auditArchiveKey(chainY, 1, 2) });
    const seqs = await db.query<{ workspace_id: string; seq: number }>('SELECT workspace_id, seq FROM audit_logs WHERE workspace_id = ANY($1::uuid[]) ORDER BY workspace_id, seq', [[chainX, chainY]]);
    expect(seqs.rows.filter((r) => r.workspace_id === chainX).map((r) => r.seq)).toEqual([5, 6]);
    expect(seqs.rows.filter((r) => r.workspace_id === chainY).map((r) => r.seq)).toEqual([3]);

    // The archive holds entries 1–4 with their hashes; the anchor is the hash of entry 4.
    const entries: Array<{ seq: number; hash: string }> = [];
    const manifest = await readArchive(t.app.platform, x.key, (row) => entries.push(row as { seq: number; hash: string }));
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(manifest.chain).toMatchObject({ firstSeq: 1, lastSeq: 4, firstPrevHash: GENESIS_HASH, lastHash: entries[3]!.hash });
    const anchor = await db.query<{ last_hash: string; sha256: string; object_key: string }>('SELECT last_hash, sha256, object_key FROM audit_chain_anchors WHERE workspace_id = $1', [chainX]);
    expect(anchor.rows).toEqual([{ last_hash: entries[3]!.hash, sha256: manifest.sha256, object_key: x.key }]);

    expect(await verifyChain(db, chainX)).toEqual({ ok: true, workspaceId: chainX, checked: 2, archivedThroughSeq: 4 });
    expect(await verifyChain(db, chainY)).toMatchObject({ ok: true, checked: 1, archivedThroughSeq: 2 });
    // Appends continue the chain after the cut, and a second pass archives nothing more of it.
    await appendAudit(db, { workspaceId: chainX, action: 'after.cut', resource: 'test' });
    expect(await verifyChain(db, chainX)).toMatchObject({ ok: true, checked: 3 });
    const again = await runLifecycle(t.app.platform, now);
    expect(again.archived).toEqual([]);
    if (postgres) {
      const verified = await cli(['audit', 'verify', '--workspace', chainX], { DATABASE_URL: t.databaseUrl!, JWT_SECRET: 'test-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0' });
      expect(verified.stdout).toContain(`✓ ${chainX}: 3 entries verify`);
      expect(verified.code).toBe(0);
    }
  });

  it.runIf(enabled)('refuses DELETE outside the purge transaction, UPDATE always, and custody deletes even inside it', async () => {
    const [keptEvent] = seeded.security_events!.kept;
    await expect(db.query('DELETE FROM security_events WHERE id = $1', [keptEvent])).rejects.toThrow(/append-only: DELETE refused/);
    await expect(db.query('DELETE FROM audit_logs WHERE workspace_id = $1', [chainX])).rejects.toThrow(/append-only: DELETE refused/);
    await expect(db.query('DELETE FROM policy_audit_logs')).rejects.toThrow(/append-only: DELETE refused/);
    await expect(
      db.transaction(async (tx) => {
        await tx.exec("SET LOCAL siq.lifecycle_purge = 'on'");
        await tx.query("UPDATE security_events SET type = 'x' WHERE id = $1", [keptEvent]);
      }),
    ).rejects.toThrow(/append-only: UPDATE refused/);
    await db.query(
      "INSERT INTO evidence_custody (workspace_id, evidence_id, seq, action, created_at, prev_hash, hash) VALUES ($1, $2, 1, 'upload', $3, $4, $4)",
      [randomUUID(), randomUUID(), ago(400), GENESIS_HASH],
    );
    await expect(
      db.transaction(async (tx) => {
        await tx.exec("SET LOCAL siq.lifecycle_purge = 'on'");
        await tx.query('DELETE FROM evidence_custody');
      }),
    ).rejects.toThrow(/append-only: DELETE refused/);
    const tenantRole = await db.query<{ usable: boolean }>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') AND pg_has_role(current_user, 'siq_tenant', 'MEMBER') AS usable");
    if (tenantRole.rows[0]?.usable) {
      await expect(
        db.transaction(async (tx) => {
          await tx.exec("SET LOCAL ROLE siq_tenant; SET LOCAL siq.lifecycle_purge = 'on'");
          await tx.query('DELETE FROM security_events WHERE id = $1', [keptEvent]);
        }),
      ).rejects.toThrow(/append-only: DELETE refused/);
    }
    // The setting lasts one transaction only.
    await expect(db.query('DELETE FROM security_events WHERE id = $1', [keptEvent])).rejects.toThrow(/append-only/);
    expect((await db.query('SELECT id FROM security_events WHERE id = $1', [keptEvent])).rows).toHaveLength(1);
  });

  it.runIf(enabled)('still detects a tampered remaining entry and a missing one, and never archives a broken chain', async () => {
    await db.exec('ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only');
    try {
      await db.query("UPDATE audit_logs SET description = 'rewritten' WHERE workspace_id = $1 AND seq = 6", [chainX]);
      await db.query('DELETE FROM audit_logs WHERE workspace_id = $1 AND seq = 3', [chainY]);
    } finally {
      await db.exec('ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only');
    }
    expect(await verifyChain(db, chainX)).toMatchObject({ ok: false, checked: 1, firstBroken: { seq: 6, reason: expect.stringMatching(/altered/) } });
    expect(await verifyChain(db, chainY)).toMatchObject({ ok: false, firstBroken: { seq: 3, reason: expect.stringMatching(/missing/) } });
    // 100 days on, chain X's entries 5–7 are due; entry 6 does not verify, so none of them is archived or removed.
    await expect(runLifecycle(t.app.platform, new Date(now.getTime() + 100 * DAY))).rejects.toThrow(/audit_logs .*does not verify/);
    expect((await db.query('SELECT first_seq FROM audit_chain_anchors WHERE workspace_id = $1', [chainX])).rows).toEqual([{ first_seq: 1 }]);
    expect((await db.query<{ seq: number }>('SELECT seq FROM audit_logs WHERE workspace_id = $1 ORDER BY seq', [chainX])).rows.map((r) => r.seq)).toEqual([5, 6, 7]);
  });

  it.runIf(enabled)(`runs once when two ${withRedis ? 'processes (shared PostgreSQL and Redis)' : 'schedulers (shared cache)'} start it together`, async () => {
    const other = withRedis ? await buildTestApp({ ...shared, DATABASE_URL: t.databaseUrl! }) : null;
    try {
      const platforms = [t.app.platform, (other ?? t).app.platform];
      const ids = [
        await idOf(db, 'INSERT INTO security_events (type, created_at) VALUES ($1, $2)', ['auth.sign_in_failed', ago(200)]),
        await idOf(db, 'INSERT INTO security_events (type, created_at) VALUES ($1, $2)', ['auth.sign_in_failed', ago(199)]),
      ];
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      const runs: string[] = [];
      const name = `lifecycle-twice-${randomUUID().slice(0, 8)}`;
      const handles = platforms.map((platform, i) =>
        schedule(platform, name, 3_600_000, async () => {
          runs.push(`scheduler ${i}`);
          await gate;
          return runLifecycle(platform, now);
        }),
      );
      try {
        const pending = handles.map((h) => h.runNow());
        const refused = await Promise.race(pending);
        expect(refused).toBeNull();
        open();
        const results = await Promise.all(pending);
        expect(results.filter((r) => r !== null)).toHaveLength(1);
        expect(runs).toHaveLength(1);
        const run = results.find((r) => r !== null)!;
        expect(run).toMatchObject({ ok: true, result: { archived: [expect.objectContaining({ table: 'security_events', rows: 2 })] } });
        expect((await db.query('SELECT id FROM security_events WHERE id = ANY($1::bigint[])', [ids])).rows).toEqual([]);
        const keys: string[] = [];
        for await (const object of t.app.platform.objects.list('archives', 'lifecycle/security_events/')) if (object.key.endsWith('.manifest.json')) keys.push(object.key);
        expect(keys).toContain(manifestKeyOf(tableArchiveKey('security_events', ids[0]!, ids[1]!)));
      } finally {
        for (const h of handles) h.stop();
      }
    } finally {
      await other?.close();
    }
  });

  it.runIf(enabled)('shows every scheduled job and its runs to platform admins, and runs one on request', async () => {
    const extra = schedule(t.app.platform, 'example-job', 3_600_000, async () => ({ done: true }));
    try {
      const ran = await t.app.inject({ method: 'POST', url: `/api/v1/admin/jobs/${MAINTENANCE_JOB}/run`, headers: admin.headers });
      expect(ran.statusCode).toBe(200);
      expect(ran.json().run).toMatchObject({ job: MAINTENANCE_JOB, ok: true, result: { database: postgres ? 'postgres' : 'pglite', failed: [] } });

      const listed = await t.app.inject({ method: 'GET', url: '/api/v1/admin/jobs', headers: admin.headers });
      expect(listed.statusCode).toBe(200);
      const byName = new Map((listed.json().jobs as Array<{ name: string; lastRun: unknown; intervalMs: number }>).map((j) => [j.name, j]));
      expect([...byName.keys()]).toEqual(expect.arrayContaining([LIFECYCLE_JOB, MAINTENANCE_JOB, 'example-job']));
      expect(byName.get(MAINTENANCE_JOB)).toMatchObject({ intervalMs: 1440 * 60_000, lastRun: { job: MAINTENANCE_JOB, ok: true, durationMs: expect.any(Number), startedAt: expect.any(String) } });
      expect(byName.get('example-job')!.lastRun).toBeNull();

      const history = await t.app.inject({ method: 'GET', url: `/api/v1/admin/jobs/${MAINTENANCE_JOB}/runs`, headers: admin.headers });
      expect(history.json().runs[0]).toMatchObject({ job: MAINTENANCE_JOB, ok: true, result: { failed: [] } });

      // The run is in the platform audit chain.
      const audit = await db.query<{ action: string; resource_id: string }>("SELECT action, resource_id FROM audit_logs WHERE action = 'admin.job.run' ORDER BY id DESC LIMIT 1");
      expect(audit.rows[0]).toEqual({ action: 'admin.job.run', resource_id: MAINTENANCE_JOB });

      // A run held elsewhere (the lock) is refused, unknown jobs are 404.
      const lock = await t.app.platform.cache.acquireLock('job:example-job', 60_000);
      try {
        const busy = await t.app.inject({ method: 'POST', url: '/api/v1/admin/jobs/example-job/run', headers: admin.headers });
        expect(busy.statusCode).toBe(409);
        expect(busy.json().error.code).toBe('SIQ_JOB_RUNNING');
      } finally {
        await lock!.release();
      }
      const background = await t.app.inject({ method: 'POST', url: '/api/v1/admin/jobs/example-job/run?wait=false', headers: admin.headers });
      expect(background.statusCode).toBe(202);
      expect((await t.app.inject({ method: 'POST', url: '/api/v1/admin/jobs/no-such-job/run', headers: admin.headers })).json().error.code).toBe('SIQ_NOT_FOUND');
      await expect.poll(async () => (await extra.lastRun())?.result).toEqual({ done: true });
    } finally {
      extra.stop();
    }
    const afterStop = await t.app.inject({ method: 'GET', url: '/api/v1/admin/jobs', headers: admin.headers });
    expect((afterStop.json().jobs as Array<{ name: string }>).map((j) => j.name)).not.toContain('example-job');
  });

  it.runIf(enabled)('refuses everyone but platform admins', async () => {
    const ws = await buildWorkspace(t.app, user);
    const key = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/apikeys`, headers: user.headers, payload: { name: 'admin-key', scopes: ['admin'] } })).json().key as string;
    for (const [method, url] of [['GET', '/api/v1/admin/jobs'], ['GET', `/api/v1/admin/jobs/${LIFECYCLE_JOB}/runs`], ['POST', `/api/v1/admin/jobs/${LIFECYCLE_JOB}/run`]] as const) {
      expect((await t.app.inject({ method, url })).statusCode, `${method} ${url} anonymous`).toBe(401);
      const asUser = await t.app.inject({ method, url, headers: user.headers });
      expect(asUser.statusCode, `${method} ${url} as a workspace owner`).toBe(403);
      expect(asUser.json().error.code).toBe('SIQ_FORBIDDEN');
      expect((await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` } })).statusCode, `${method} ${url} with an admin API key`).toBe(403);
    }
    expect(await runMaintenance(t.app.platform)).toMatchObject({ database: postgres ? 'postgres' : 'pglite', failed: [] });
  });
});
