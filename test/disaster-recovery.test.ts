import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { createObjectStore } from '../src/platform/objects/index.js';
import { buildTestApp } from './helpers/app.js';
import { counts, fileHashes, populate } from './helpers/backup-fixtures.js';
import { createTestDatabase } from './helpers/postgres.js';
import { testDatabaseUrl } from './helpers/services.js';

// The disaster-recovery runbook of docs/operations.md, step by step with the real CLI: a
// PostgreSQL installation is backed up with `sentineliq backup`, the machine is lost, and a new,
// empty embedded installation with only the backups bucket is brought back with `restore list`,
// `restore latest` and `audit verify` (which also proves PostgreSQL → embedded).

const bin = fileURLToPath(new URL('../bin/sentineliq.js', import.meta.url));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'siq-dr-'));
  dirs.push(dir);
  return dir;
}

function cli(args: string[], settings: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn', ...settings } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function backupsBucketDir(dataDir: string): string {
  const { config } = loadConfig({ DATA_DIR: dataDir });
  const store = createObjectStore({ env: config.env, dataDir, publicUrl: config.publicUrl, signingKey: 'only-bucket-names-are-read', s3: config.s3 });
  return join(dataDir, 'objects', store.bucketName('backups'));
}

describe.runIf(Boolean(testDatabaseUrl))('disaster-recovery runbook through the CLI', () => {
  it('backs up PostgreSQL, restores on an empty embedded machine with restore list / latest, and everything is back', async () => {
    const secrets = { JWT_SECRET: 'dr-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0', BACKUP_ENCRYPTION_KEY: randomBytes(32).toString('base64'), BACKUP_ENCRYPTION_KEY_ID: 'dr-2026' };
    const db = await createTestDatabase();
    const source = tempDir();
    const target = tempDir();
    let dropped = false;
    try {
      const t = await buildTestApp({ DATA_DIR: source, DATABASE_URL: db.url, ...secrets });
      let fixture: Awaited<ReturnType<typeof populate>>;
      let before: Record<string, number>;
      let files: Record<string, string>;
      try {
        fixture = await populate(t);
        before = await counts(t.app);
        files = await fileHashes(t.app.platform.objects);
      } finally {
        await t.close();
      }

      const backup = await cli(['backup'], { DATA_DIR: source, DATABASE_URL: db.url, ...secrets });
      expect(backup.code, backup.stderr).toBe(0);
      expect(backup.stdout).toMatch(/verified: trial restore into postgres/);
      const id = /^backup (\S+):/m.exec(backup.stdout)![1]!;

      // The machine is lost: database and data directory. Only the backups bucket survives.
      cpSync(backupsBucketDir(source), backupsBucketDir(target), { recursive: true });
      await db.drop();
      dropped = true;
      rmSync(source, { recursive: true, force: true });

      const list = await cli(['restore', 'list'], { DATA_DIR: target, ...secrets });
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toMatch(new RegExp(`^${id}\\s.*\\byes\\b.*\\bpostgres\\b.*\\bdr-2026\\b`, 'm'));

      const restore = await cli(['restore', 'latest'], { DATA_DIR: target, ...secrets });
      expect(restore.code, restore.stderr).toBe(0);
      expect(restore.stdout).toMatch(new RegExp(`^restored ${id} into pglite`, 'm'));

      const verify = await cli(['audit', 'verify'], { DATA_DIR: target, ...secrets });
      expect(verify.code, verify.stdout).toBe(0);
      expect(verify.stdout).toContain(`✓ ${fixture.ws.id}`);

      // A second restore into the now populated target is refused unless asked for.
      const again = await cli(['restore', 'latest'], { DATA_DIR: target, ...secrets });
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('SIQ_BACKUP_TARGET_NOT_EMPTY');

      const restored = await buildTestApp({ DATA_DIR: target, ...secrets });
      try {
        expect(await counts(restored.app)).toEqual(before);
        expect(await fileHashes(restored.app.platform.objects)).toEqual(files);
        const incidents = await restored.app.inject({ method: 'GET', url: `/api/v1/workspaces/${fixture.ws.id}/incidents`, headers: fixture.admin.headers });
        expect(incidents.statusCode).toBe(200);
        expect(incidents.json().incidents).toHaveLength(1);
      } finally {
        await restored.close();
      }
    } finally {
      if (!dropped) await db.drop();
    }
  }, 180_000);
});
