import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryHash, GENESIS_HASH, type ChainedFields } from '../src/modules/audit/chain.js';
import { CSV_HEADER, verifyChain } from '../src/modules/audit/service.js';
import type { Database } from '../src/platform/db/types.js';
import { testDatabaseUrl } from './helpers/services.js';
import { buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from './helpers/app.js';

/** Superuser-only: writes with triggers off, the way an attacker with database access would. */
async function behindTheGuard(db: Database, sql: string, params: unknown[]): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.exec('SET LOCAL session_replication_role = replica');
    await tx.query(sql, params);
  });
}

const implementations = [
  { name: 'pglite', enabled: true, postgres: false },
  { name: 'postgres', enabled: Boolean(testDatabaseUrl), postgres: true },
];

describe.each(implementations)('audit log on $name', ({ enabled, postgres }) => {
  let t: TestApp & { databaseUrl?: string };
  let owner: TestUser;
  let ws: { id: string; name: string };

  beforeAll(async () => {
    if (!enabled) return;
    t = await buildTestApp({}, { postgres });
    owner = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner, 'Audited');
    await t.app.inject({ method: 'PATCH', url: `/api/v1/workspaces/${ws.id}`, headers: owner.headers, payload: { name: 'Audited Renamed' } });
    await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/invitations`, headers: owner.headers, payload: { email: 'guest@example.test', role: 'viewer' } });
    await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/apikeys`, headers: { ...owner.headers, 'user-agent': 'audit-test/1.0' }, payload: { name: 'shipper', scopes: ['ingest'] } });
  });
  afterAll(async () => {
    if (enabled) await t.close();
  });

  it.skipIf(!enabled)('records who did what, filters, and keeps secrets out', async () => {
    const res = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/audit`, headers: owner.headers });
    expect(res.statusCode).toBe(200);
    const entries = res.json().entries as Array<Record<string, unknown>>;
    expect(entries.map((e) => e.action)).toEqual(['apikey.create', 'invitation.create', 'workspace.rename', 'workspace.create']);
    expect(entries[0]).toMatchObject({ userId: owner.id, userEmail: owner.email, resource: 'apikey', userAgent: 'audit-test/1.0', ip: '127.0.0.1', seq: 4, requestId: expect.any(String) });
    expect(entries[2]).toMatchObject({ description: 'renamed to "Audited Renamed"', resourceId: ws.id });
    const text = JSON.stringify(entries);
    expect(text).not.toMatch(/siq_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{32}/);
    expect(text).not.toContain('siqinv_');

    const filtered = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/audit?action=workspace.*&userId=${owner.id}`, headers: owner.headers });
    expect(filtered.json().entries.map((e: { action: string }) => e.action)).toEqual(['workspace.rename', 'workspace.create']);
    const page = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/audit?limit=2&beforeSeq=3`, headers: owner.headers });
    expect(page.json().entries.map((e: { seq: number }) => e.seq)).toEqual([2, 1]);
    const future = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/audit?from=2100-01-01T00:00:00Z`, headers: owner.headers });
    expect(future.json().entries).toEqual([]);
  });

  it.skipIf(!enabled)('refuses UPDATE and DELETE from the application', async () => {
    const { db } = t.app.platform;
    await expect(db.query("UPDATE audit_logs SET description = 'rewritten' WHERE workspace_id = $1", [ws.id])).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM audit_logs WHERE workspace_id = $1', [ws.id])).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM policy_audit_logs')).rejects.toThrow(/append-only/);
  });

  it.skipIf(!enabled)('verifies, then names the first broken entry after tampering behind the guard', async () => {
    const verify = () => t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/audit/verify`, headers: owner.headers });
    expect((await verify()).json()).toEqual({ ok: true, workspaceId: ws.id, checked: 4 });

    // An extra chain whose middle entry is edited and one whose entry is deleted.
    const edited = await buildWorkspace(t.app, owner);
    for (let i = 0; i < 3; i++) await t.app.inject({ method: 'PATCH', url: `/api/v1/workspaces/${edited.id}`, headers: owner.headers, payload: { name: `n${i}` } });
    await behindTheGuard(t.app.platform.db, "UPDATE audit_logs SET description = 'nothing happened here' WHERE workspace_id = $1 AND seq = 3", [edited.id]);
    expect(await verifyChain(t.app.platform.db, edited.id)).toMatchObject({ ok: false, checked: 2, firstBroken: { seq: 3, reason: expect.stringMatching(/altered/) } });

    await behindTheGuard(t.app.platform.db, 'DELETE FROM audit_logs WHERE workspace_id = $1 AND seq = 2', [ws.id]);
    const broken = (await verify()).json();
    expect(broken).toMatchObject({ ok: false, checked: 1, firstBroken: { seq: 2, id: null } });
    expect(broken.firstBroken.reason).toMatch(/missing/);

    if (t.databaseUrl) {
      // The CLI walks every chain and exits non-zero naming the broken ones.
      const bin = fileURLToPath(new URL('../bin/sentineliq.js', import.meta.url));
      const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const child = spawn(process.execPath, [bin, 'audit', 'verify'], { env: { PATH: process.env.PATH, DATABASE_URL: t.databaseUrl!, LOG_LEVEL: 'warn', DATA_DIR: t.app.platform.config.dataDir } });
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.on('close', (code) => resolve({ code, stdout }));
      });
      expect(out.code).toBe(1);
      expect(out.stdout).toContain(`✗ ${ws.id}: first broken entry seq 2`);
      expect(out.stdout).toContain(`✗ ${edited.id}: first broken entry seq 3`);
      expect(out.stdout).toMatch(/2 of \d+ chain\(s\) are broken/);
    }
  });
});

describe('audit export', () => {
  let t: TestApp;
  let owner: TestUser;
  let ws: { id: string };
  const TOTAL = 100_000;

  beforeAll(async () => {
    t = await buildTestApp();
    owner = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner);
    // 100k valid chain entries written with COPY (appending one by one would take minutes).
    const last = (await t.app.platform.db.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_logs WHERE workspace_id = $1 ORDER BY seq DESC LIMIT 1', [ws.id])).rows[0]!;
    let prev = last.hash;
    const rows: unknown[][] = [];
    const start = Date.UTC(2026, 10, 1);
    for (let i = 1; i <= TOTAL; i++) {
      const fields: ChainedFields = {
        workspaceId: ws.id, seq: last.seq + i, createdAt: new Date(start + i * 1000).toISOString(), userId: owner.id, userEmail: owner.email, apiKeyId: null,
        action: 'alert.update', resource: 'alert', resourceId: `a-${i}`, description: i === 7 ? '=HYPERLINK("http://evil.example","click")' : `status changed, "quoted", line ${i}`,
        ip: '10.0.0.1', userAgent: null, requestId: null, metadata: {},
      };
      const hash = entryHash(prev, fields);
      rows.push([fields.workspaceId, fields.seq, fields.createdAt, fields.userId, fields.userEmail, fields.action, fields.resource, fields.resourceId, fields.description, fields.ip, '{}', prev, hash]);
      prev = hash;
    }
    await t.app.platform.db.copyFrom('audit_logs', ['workspace_id', 'seq', 'created_at', 'user_id', 'user_email', 'action', 'resource', 'resource_id', 'description', 'ip', 'metadata', 'prev_hash', 'hash'], rows);
    expect(GENESIS_HASH).toHaveLength(64);
  }, 120_000);
  afterAll(async () => t.close());

  it('streams 100k entries as CSV that a CSV parser reads back, in bounded memory', async () => {
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = t.app.server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/workspaces/${ws.id}/audit/export?format=csv`, { headers: owner.headers });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/csv');
    const baseline = process.memoryUsage().heapUsed;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 20);
    let count = 0;
    let header: string[] | undefined;
    let injected: string[] | undefined;
    const parser = Readable.fromWeb(res.body as never).pipe(parse({ relax_column_count: false }));
    for await (const record of parser as AsyncIterable<string[]>) {
      if (!header) header = record;
      else {
        count++;
        if (record[3] === 'alert' && record[4] === 'a-7') injected = record;
      }
    }
    clearInterval(sampler);
    expect(header).toEqual(CSV_HEADER);
    expect(header!.join(',')).toBe('Timestamp,User,Action,Resource,Resource ID,Description,IP Address');
    expect(count).toBe(TOTAL + 1); // + the workspace.create entry
    expect(injected![5]).toBe('\'=HYPERLINK("http://evil.example","click")');
    // Held whole, 100k rows would take well over 100 MB of heap; streamed in batches it stays small.
    expect(peak - baseline).toBeLessThan(80 * 1024 * 1024);
  }, 120_000);

  it('exports NDJSON with the hashes, which verify', async () => {
    const res = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/audit/export?format=ndjson&action=workspace.create`, headers: owner.headers });
    const lines = res.body.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ action: 'workspace.create', seq: 1, hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect((await verifyChain(t.app.platform.db, ws.id)).ok).toBe(true);
  }, 60_000);
});
