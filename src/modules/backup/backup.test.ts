import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, buildUser, type TestApp, type TestUser } from '../../../test/helpers/app.js';
import { counts, fileHashes, populate, readAll } from '../../../test/helpers/backup-fixtures.js';
import { createTestDatabase } from '../../../test/helpers/postgres.js';
import { startS3Server } from '../../../test/helpers/s3.js';
import { testDatabaseUrl, testRedisUrl, uniqueName } from '../../../test/helpers/services.js';
import { loadConfig, type Config } from '../../config/load.js';
import { resolveSecrets } from '../../config/secrets.js';
import { createPlatform, deriveKey } from '../../platform/index.js';
import { createObjectStore } from '../../platform/objects/index.js';
import type { ObjectStore } from '../../platform/objects/types.js';
import { verifyChain } from '../audit/service.js';
import { buildKeyring, decryptStream, encryptStream } from './crypto.js';
import { decideRetention, isoWeekKey, type BackupRecord } from './retention.js';
import { backupHealth, BackupService, scheduleBackups } from './service.js';

const KEY = randomBytes(32).toString('base64');
const OTHER_KEY = randomBytes(32).toString('hex');
const silent = pino({ level: 'silent' });

const implementations = [
  { name: 'pglite', enabled: true, postgres: false },
  { name: 'postgres', enabled: Boolean(testDatabaseUrl), postgres: true },
];

function configFor(settings: Record<string, string>): Config {
  const { config, problems } = loadConfig({ JWT_SECRET: 'test-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0', BACKUP_ENCRYPTION_KEY: KEY, ...settings });
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return resolveSecrets(config);
}

function storeFor(config: Config): ObjectStore {
  return createObjectStore({ env: config.env, dataDir: config.dataDir, publicUrl: config.publicUrl, signingKey: deriveKey(config, 'object-urls'), s3: config.s3 });
}

describe('backup encryption', () => {
  it('round-trips frames and refuses a wrong key and a flipped byte', async () => {
    const ring = buildKeyring('k1', KEY);
    const plain = randomBytes(200_000);
    const sealed = await readAll(Readable.from([plain]).pipe(encryptStream(ring)));
    expect(await readAll(Readable.from([sealed]).pipe(decryptStream(ring)))).toEqual(plain);

    const wrong = buildKeyring('k1', OTHER_KEY);
    await expect(pipeline(Readable.from([sealed]), decryptStream(wrong), async function* (s) { for await (const c of s) yield c; })).rejects.toMatchObject({ code: 'SIQ_BACKUP_KEY_INVALID' });
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 100] = flipped[flipped.length - 100]! ^ 1;
    await expect(pipeline(Readable.from([flipped]), decryptStream(ring), async function* (s) { for await (const c of s) yield c; })).rejects.toMatchObject({ code: 'SIQ_BACKUP_CORRUPT' });
    const truncated = sealed.subarray(0, sealed.length - 20);
    await expect(pipeline(Readable.from([truncated]), decryptStream(ring), async function* (s) { for await (const c of s) yield c; })).rejects.toMatchObject({ code: 'SIQ_BACKUP_CORRUPT' });
  });
});

describe('backup retention', () => {
  const day = (iso: string) => new Date(`${iso}T02:00:00Z`);
  const idOf = (d: Date) => d.toISOString().slice(0, 10);

  it('keeps exactly the expected set after 100 simulated days of daily backups (7 daily, 4 weekly, 3 monthly)', () => {
    let stored: BackupRecord[] = [];
    const start = day('2026-01-01');
    for (let i = 0; i < 100; i++) {
      const at = new Date(start.getTime() + i * 86_400_000);
      stored.push({ id: idOf(at), createdAt: at, verified: true });
      const decision = decideRetention(stored, new Date(at.getTime() + 3_600_000), { kind: 'gfs', daily: 7, weekly: 4, monthly: 3 });
      stored = stored.filter((b) => decision.keep.includes(b.id));
    }
    // Day 100 is Friday 2026-04-10: daily 04-04…04-10; weekly (ISO weeks, newest of each) 04-10, 04-05, 03-29, 03-22; monthly 04-10, 03-31, 02-28.
    expect(stored.map((b) => b.id).sort()).toEqual(['2026-02-28', '2026-03-22', '2026-03-29', '2026-03-31', '2026-04-04', '2026-04-05', '2026-04-06', '2026-04-07', '2026-04-08', '2026-04-09', '2026-04-10']);
    expect(isoWeekKey(day('2026-04-10'))).toBe('2026-W15');
  });

  it('deletes nothing until a newer backup is verified, and keeps unverified newer ones', () => {
    const backups: BackupRecord[] = Array.from({ length: 20 }, (_, i) => ({ id: `b${String(i).padStart(2, '0')}`, createdAt: new Date(Date.UTC(2026, 0, 1 + i * 10)), verified: false }));
    expect(decideRetention(backups, new Date(Date.UTC(2026, 7, 1)), { kind: 'days', days: 7 }).delete).toEqual([]);
    backups[10]!.verified = true;
    const decision = decideRetention(backups, new Date(Date.UTC(2026, 7, 1)), { kind: 'days', days: 7 });
    expect(decision.keep).toEqual(['b19', 'b18', 'b17', 'b16', 'b15', 'b14', 'b13', 'b12', 'b11', 'b10']);
    expect(decision.delete).toHaveLength(10);
  });
});

describe.each(implementations)('backup and restore on $name', ({ enabled, postgres }) => {
  let t: TestApp & { databaseUrl?: string };
  let admin: TestUser;
  let analyst: TestUser;
  let ws: { id: string };
  let dataDir: string;
  let before: Record<string, number>;
  let files: Record<string, string>;
  let backupId: string;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    if (!enabled) return;
    dataDir = mkdtempSync(join(tmpdir(), 'siq-backup-src-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    t = await buildTestApp({ DATA_DIR: dataDir, BACKUP_ENCRYPTION_KEY: KEY, BACKUP_ENCRYPTION_KEY_ID: 'k1' }, { postgres });
    ({ admin, analyst, ws } = await populate(t));
    before = await counts(t.app);
    files = await fileHashes(t.app.platform.objects);
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it.runIf(enabled)('runs a backup through the admin API (platform admins only) and verifies it by a trial restore', async () => {
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/admin/backups', headers: analyst.headers })).statusCode).toBe(403);
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/admin/backups', headers: admin.headers });
    expect(res.statusCode, res.body).toBe(201);
    const body = res.json();
    expect(body.verification.ok).toBe(true);
    expect(body.verification.scratch).toBe(postgres ? 'postgres' : 'pglite');
    expect(body.objects.count).toBe(Object.keys(files).length + 1);
    backupId = body.id;
    const list = await t.app.inject({ method: 'GET', url: '/api/v1/admin/backups', headers: admin.headers });
    expect(list.json().items[0]).toMatchObject({ id: backupId, verified: true, schemaVersion: before.schema_migrations ? expect.stringMatching(/^\d{4}_/) : '' });
    const health = await t.app.inject({ method: 'GET', url: '/health' });
    expect(health.json().backups).toMatchObject({ status: 'ok', lastVerified: backupId });
  }, 60_000);

  it.runIf(enabled)('restores into a fresh database and empty object store: same rows, same evidence bytes, the audit chain verifies', async () => {
    // "Another machine": new data directory and database; only the backups bucket is carried over.
    const target = mkdtempSync(join(tmpdir(), 'siq-backup-dst-'));
    cleanups.push(async () => rmSync(target, { recursive: true, force: true }));
    const source = configFor({ DATA_DIR: dataDir });
    const backupsDir = join(dataDir, 'objects', storeFor(source).bucketName('backups'));
    cpSync(backupsDir, join(target, 'objects', storeFor(source).bucketName('backups')), { recursive: true });
    let targetUrl: string | undefined;
    if (postgres) {
      const db = await createTestDatabase();
      cleanups.push(db.drop);
      targetUrl = db.url;
    }
    const config = configFor({ DATA_DIR: target, BACKUP_ENCRYPTION_KEY_ID: 'k1', ...(targetUrl ? { DATABASE_URL: targetUrl } : {}) });
    const objects = storeFor(config);
    await objects.setup();
    expect(Object.keys(await fileHashes(objects))).toEqual([]);
    const result = await new BackupService({ config, logger: silent, objects }).restore('latest');
    expect(result.id).toBe(backupId);
    await objects.close();

    const restored = await buildTestApp({ DATA_DIR: target, BACKUP_ENCRYPTION_KEY: KEY, BACKUP_ENCRYPTION_KEY_ID: 'k1', ...(targetUrl ? { DATABASE_URL: targetUrl } : {}) });
    try {
      expect(await counts(restored.app)).toEqual(before);
      expect(await fileHashes(restored.app.platform.objects)).toEqual(files);
      expect((await verifyChain(restored.app.platform.db, ws.id)).ok).toBe(true);
      // The restored platform works: sign-in with the old account, tenant-scoped reads.
      const incidents = await restored.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/incidents`, headers: admin.headers });
      expect(incidents.statusCode).toBe(200);
    } finally {
      await restored.close();
    }
  }, 90_000);

  it.runIf(enabled)('refuses a non-empty target; --drop-existing drops and recreates its schema', async () => {
    const target = mkdtempSync(join(tmpdir(), 'siq-backup-drop-'));
    cleanups.push(async () => rmSync(target, { recursive: true, force: true }));
    let targetUrl: string | undefined;
    if (postgres) {
      const db = await createTestDatabase();
      cleanups.push(db.drop);
      targetUrl = db.url;
    }
    const config = configFor({ DATA_DIR: target, BACKUP_ENCRYPTION_KEY_ID: 'k1', ...(targetUrl ? { DATABASE_URL: targetUrl } : {}) });
    const junk = await createPlatform(config, silent, { migrate: false });
    await junk.db.exec('CREATE TABLE junk (x int)');
    await junk.close();
    const service = new BackupService({ config, logger: silent, objects: t.app.platform.objects });
    await expect(service.restore(backupId)).rejects.toMatchObject({ code: 'SIQ_BACKUP_TARGET_NOT_EMPTY' });
    const result = await service.restore(backupId, { dropExisting: true });
    expect(result.rows).toBeGreaterThan(0);
    const check = await createPlatform(config, silent, { migrate: false });
    try {
      expect((await check.db.query("SELECT to_regclass('public.junk') AS t")).rows[0]).toEqual({ t: null });
      expect((await check.db.query<{ n: number }>('SELECT count(*)::int AS n FROM events')).rows[0]!.n).toBe(before.events);
    } finally {
      await check.close();
    }
  }, 60_000);

  it.runIf(enabled)('a wrong key is refused with SIQ_BACKUP_KEY_INVALID before anything is touched', async () => {
    for (const settings of [{ BACKUP_ENCRYPTION_KEY: OTHER_KEY, BACKUP_ENCRYPTION_KEY_ID: 'k1' }, { BACKUP_ENCRYPTION_KEY: OTHER_KEY, BACKUP_ENCRYPTION_KEY_ID: 'k2' }]) {
      const config = configFor({ DATA_DIR: dataDir, ...settings });
      const service = new BackupService({ config, logger: silent, objects: t.app.platform.objects });
      await expect(service.restore(backupId, { targetUrl: 'postgres://nobody@127.0.0.1:1/none' })).rejects.toMatchObject({ code: 'SIQ_BACKUP_KEY_INVALID' });
    }
    // The old key as a previous key opens it again (rotation).
    const rotated = configFor({ DATA_DIR: dataDir, BACKUP_ENCRYPTION_KEY: OTHER_KEY, BACKUP_ENCRYPTION_KEY_ID: 'k2', BACKUP_PREVIOUS_KEYS: `k1:${KEY}` });
    await expect(new BackupService({ config: rotated, logger: silent, objects: t.app.platform.objects }).manifest(backupId)).resolves.toMatchObject({ keyId: 'k1' });
  });

  it.runIf(enabled)('one flipped byte fails verification (error, failing /health) and restore refuses it', async () => {
    const run = await t.app.backups.run({ trigger: 'manual' });
    expect(run.verification.ok).toBe(true);
    const id = run.manifest.id;
    const key = `backups/${id}/dump.sql.gz.enc`;
    const bytes = await readAll((await t.app.platform.objects.get('backups', key)).body);
    bytes[Math.floor(bytes.length / 2)] = bytes[Math.floor(bytes.length / 2)]! ^ 0x01;
    await t.app.platform.objects.put('backups', key, bytes);

    const verification = await t.app.backups.verify(id);
    expect(verification).toMatchObject({ ok: false, error: { code: 'SIQ_BACKUP_CORRUPT' } });
    await expect(t.app.backups.restore(id, { targetUrl: 'postgres://nobody@127.0.0.1:1/none' })).rejects.toMatchObject({ code: 'SIQ_BACKUP_CORRUPT' });
    const health = await t.app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(503);
    expect(health.json().backups).toMatchObject({ status: 'fail', latest: { id, verified: false } });
    expect((await t.app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
    // The failure is an alert in the platform admin's workspace.
    const alerts = await t.app.platform.db.query<{ n: number }>("SELECT count(*)::int AS n FROM alerts WHERE workspace_id = $1 AND rule_id = 'platform:backup-verification'", [ws.id]);
    expect(alerts.rows[0]!.n).toBe(1);
    // Listed as failed; `restore latest` skips it (it takes the newest verified backup).
    expect((await t.app.backups.list())[0]).toMatchObject({ id, verified: false, verification: { ok: false } });
  }, 60_000);
});

describe.runIf(Boolean(testDatabaseUrl))('embedded → PostgreSQL through backup and restore', () => {
  it('restores a PGlite backup into an empty PostgreSQL database and the platform runs on it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'siq-backup-emb-'));
    const source = await buildTestApp({ DATA_DIR: dataDir, BACKUP_ENCRYPTION_KEY: KEY });
    const db = await createTestDatabase();
    try {
      const { admin, ws } = await populate(source);
      const before = await counts(source.app);
      const files = await fileHashes(source.app.platform.objects);
      const run = await source.app.backups.run({ trigger: 'cli' });
      expect(run.manifest.database).toBe('pglite');
      expect(run.verification.ok).toBe(true);
      await source.close();

      const config = configFor({ DATA_DIR: dataDir });
      const objects = storeFor(config);
      // The files come back too: empty the files bucket first.
      for await (const info of objects.list('files')) await objects.delete('files', info.key);
      const result = await new BackupService({ config, logger: silent, objects }).restore(run.manifest.id, { targetUrl: db.url });
      expect(result.target).toBe('postgres');
      await objects.close();

      const migrated = await buildTestApp({ DATA_DIR: mkdtempSync(join(tmpdir(), 'siq-backup-pg-')), DATABASE_URL: db.url, BACKUP_ENCRYPTION_KEY: KEY });
      try {
        expect(await counts(migrated.app)).toEqual(before);
        expect((await verifyChain(migrated.app.platform.db, ws.id)).ok).toBe(true);
        const res = await migrated.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/incidents`, headers: admin.headers });
        expect(res.statusCode).toBe(200);
        expect(res.json().incidents).toHaveLength(1);
      } finally {
        await migrated.close();
      }
      const check = storeFor(config);
      expect(await fileHashes(check)).toEqual(files);
      await check.close();
    } finally {
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe.runIf(Boolean(testDatabaseUrl && testRedisUrl))('scheduled backups across processes', () => {
  it('two processes sharing PostgreSQL and Redis back up a schedule slot once', async () => {
    const db = await createTestDatabase();
    const dataDir = mkdtempSync(join(tmpdir(), 'siq-backup-two-'));
    const config = configFor({ DATA_DIR: dataDir, DATABASE_URL: db.url, REDIS_URL: testRedisUrl!, REDIS_KEY_PREFIX: `${uniqueName('siq')}:` });
    const a = await createPlatform(config, silent);
    const b = await createPlatform(config, silent);
    try {
      const slot = new Date(Date.UTC(2026, 10, 23, 2, 0, 0));
      const schedules = [a, b].map((p) => scheduleBackups(p, new BackupService(p), '0 2 * * *'));
      const results = await Promise.all(schedules.map((s) => s.runSlot(slot)));
      for (const s of schedules) s.stop();
      expect(results.filter((r) => r !== null)).toHaveLength(1);
      expect(await new BackupService(a).list()).toHaveLength(1);
      // The same slot again (a restart inside it) does nothing.
      expect(await schedules[1]!.runSlot(slot)).toBeNull();
      expect(schedules[0]!.nextRun()!.getUTCHours()).toBe(2);
      const health = await backupHealth(a.objects, config, new Date());
      expect(health.status).toBe('ok');
    } finally {
      await a.close();
      await b.close();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('restore and schema versions', () => {
  it('refuses a backup from a newer schema version before touching the target', async () => {
    const t = await buildTestApp({ BACKUP_ENCRYPTION_KEY: KEY });
    const target = mkdtempSync(join(tmpdir(), 'siq-backup-newer-'));
    try {
      // A backup taken by a release with one more migration than this code has.
      await t.app.platform.db.query("INSERT INTO schema_migrations (name, checksum, duration_ms) VALUES ('9999_from_a_newer_release', 'x', 0)");
      const { manifest } = await t.app.backups.create({ trigger: 'cli' });
      expect(manifest.schemaVersion).toBe('9999_from_a_newer_release');
      const service = new BackupService({ config: configFor({ DATA_DIR: target }), logger: silent, objects: t.app.platform.objects });
      await expect(service.restore(manifest.id)).rejects.toMatchObject({ code: 'SIQ_BACKUP_SCHEMA_NEWER', details: { backup: '9999_from_a_newer_release' } });
      // Nothing was touched: the embedded target database was never even created.
      expect(existsSync(join(target, 'pglite'))).toBe(false);
    } finally {
      await t.close();
      rmSync(target, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('the backup job in the admin jobs API', () => {
  it('is listed with its cron schedule, runs on request with verification, and records the run', async () => {
    const t = await buildTestApp({ BACKUP_ENCRYPTION_KEY: KEY });
    const job = scheduleBackups(t.app.platform, t.app.backups, '0 2 * * *');
    try {
      const admin = await buildUser(t.app);
      await t.app.platform.db.query('UPDATE users SET is_platform_admin = true WHERE id = $1', [admin.id]);
      const listed = await t.app.inject({ method: 'GET', url: '/api/v1/admin/jobs', headers: admin.headers });
      expect((listed.json().jobs as Array<{ name: string }>).find((j) => j.name === 'backup')).toMatchObject({ cron: '0 2 * * *', intervalMs: null, lastRun: null });

      const ran = await t.app.inject({ method: 'POST', url: '/api/v1/admin/jobs/backup/run', headers: admin.headers });
      expect(ran.statusCode, ran.body).toBe(200);
      const run = ran.json().run;
      expect(run).toMatchObject({ job: 'backup', ok: true, result: { id: expect.any(String), verified: true } });
      const backups = await t.app.backups.list();
      expect(backups.map((b) => b.id)).toEqual([run.result.id]);
      expect(backups[0]!.trigger).toBe('manual');

      const history = await t.app.inject({ method: 'GET', url: '/api/v1/admin/jobs/backup/runs', headers: admin.headers });
      expect(history.json().runs).toHaveLength(1);
      expect(history.json().runs[0]).toMatchObject({ job: 'backup', ok: true, result: { id: run.result.id } });
      expect(await job.lastRun()).toMatchObject({ job: 'backup', ok: true });

      // A backup running elsewhere (its lock) makes the job answer 409, and a schedule slot that
      // falls inside it is skipped rather than queued.
      const lock = await t.app.platform.cache.acquireLock('backup:run', 60_000);
      try {
        const busy = await t.app.inject({ method: 'POST', url: '/api/v1/admin/jobs/backup/run', headers: admin.headers });
        expect(busy.json().error.code).toBe('SIQ_JOB_RUNNING');
        expect(await job.runSlot(new Date(Date.UTC(2026, 11, 1, 2)))).toBeNull();
      } finally {
        await lock!.release();
      }
      expect(await t.app.backups.list()).toHaveLength(1);

      job.stop();
      const afterStop = await t.app.inject({ method: 'GET', url: '/api/v1/admin/jobs', headers: admin.headers });
      expect((afterStop.json().jobs as Array<{ name: string }>).map((j) => j.name)).not.toContain('backup');
    } finally {
      job.stop();
      await t.close();
    }
  }, 60_000);
});

describe('backups on S3 (s3rver)', () => {
  it('copies objects into the backups bucket by content hash, incrementally, and restores them', async () => {
    const s3 = await startS3Server();
    const settings = { S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET_PREFIX: `siqbk${Date.now().toString(36)}`, BACKUP_ENCRYPTION_KEY: KEY };
    const t = await buildTestApp(settings);
    try {
      const objects = t.app.platform.objects;
      const same = randomBytes(10_000);
      await objects.put('files', 'ws/a.bin', same);
      await objects.put('files', 'ws/b.bin', same); // same content: stored once
      await objects.put('archives', 'events/x.ndjson.gz', randomBytes(3000));
      const first = await t.app.backups.run({ trigger: 'manual' });
      expect(first.verification.ok).toBe(true);
      expect(first.manifest.objects).toMatchObject({ count: 3, uploaded: 2 });
      const second = await t.app.backups.run({ trigger: 'manual' });
      expect(second.manifest.objects).toMatchObject({ count: 3, uploaded: 0, reused: 3 });
      const stored: string[] = [];
      for await (const info of objects.list('backups', 'objects/')) stored.push(info.key);
      expect(stored).toHaveLength(2);

      const files = await fileHashes(objects);
      for await (const info of objects.list('files')) await objects.delete('files', info.key);
      // Restore objects (and the database, into a scratch PostgreSQL or PGlite) from the S3 backups bucket.
      const target = mkdtempSync(join(tmpdir(), 'siq-backup-s3-'));
      try {
        const config = configFor({ ...settings, DATA_DIR: target });
        const restored = await new BackupService({ config, logger: silent, objects }).restore(second.manifest.id);
        expect(restored.objects).toBe(3);
        expect(await fileHashes(objects)).toEqual(files);
      } finally {
        rmSync(target, { recursive: true, force: true });
      }
    } finally {
      await t.close();
      await s3.stop();
    }
  }, 180_000);
});
