import { accessSync, constants, mkdirSync } from 'node:fs';
import type { Config, ConfigResult } from '../config/load.js';
import { resolveSecrets } from '../config/secrets.js';
import { createCache } from '../platform/cache/index.js';
import { createDatabase, migrationStatus } from '../platform/db/index.js';
import { deriveKey } from '../platform/index.js';
import { createObjectStore } from '../platform/objects/index.js';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do about it, when not ok. */
  fix?: string;
}

async function attempt(name: string, fn: () => Promise<string>, fix: string): Promise<DoctorCheck> {
  try {
    return { name, ok: true, detail: await fn() };
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message || String(err), fix };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]);
}

/** Checks the configuration and every dependency; each failure comes with what to do about it. */
export async function runDoctor(result: ConfigResult): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  for (const problem of result.problems) checks.push({ name: 'config', ok: false, detail: problem, fix: 'Set the variable as described (see the settings table in README.md).' });
  for (const warning of result.warnings) checks.push({ name: 'config', ok: true, detail: `warning: ${warning}` });
  if (result.problems.length === 0) checks.push({ name: 'config', ok: true, detail: `settings valid for ${result.config.env}` });

  let config: Config = result.config;
  checks.push(
    await attempt('data dir', async () => {
      mkdirSync(config.dataDir, { recursive: true });
      accessSync(config.dataDir, constants.W_OK);
      return `${config.dataDir} is writable`;
    }, 'Create DATA_DIR or point it at a directory this user may write.'),
  );
  if (!config.isProduction || config.security.jwtSecret) {
    try {
      config = resolveSecrets(config);
    } catch (err) {
      checks.push({ name: 'secrets', ok: false, detail: (err as Error).message, fix: 'Set JWT_SECRET, or make DATA_DIR/secrets.json readable.' });
    }
  }

  checks.push(
    await attempt('database', async () => {
      const db = await withTimeout(createDatabase(config), 15000, 'the database');
      try {
        await withTimeout(db.ping(), 5000, 'the database');
        const statuses = await migrationStatus(db);
        const pending = statuses.filter((s) => s.state === 'pending').length;
        const broken = statuses.filter((s) => s.state === 'changed' || s.state === 'missing');
        if (broken.length > 0) throw new Error(`migrations out of step: ${broken.map((s) => `${s.name} ${s.state}`).join(', ')}`);
        return `${db.kind} reachable; ${statuses.length - pending} migration(s) applied, ${pending} pending (applied at start)`;
      } finally {
        await db.close();
      }
    }, config.database.url ? 'Check DATABASE_URL (host, port, credentials, sslmode) and that PostgreSQL 15+ runs.' : 'The embedded database under DATA_DIR/pglite could not open: check permissions, or that no other process uses it.'),
  );

  checks.push(
    await attempt('cache', async () => {
      const cache = createCache(config.redis);
      try {
        await withTimeout(cache.ping(), 5000, 'the cache');
        return `${cache.kind} reachable`;
      } finally {
        await cache.close();
      }
    }, 'Check REDIS_URL / REDIS_PASSWORD / REDIS_TLS and that Redis 7 runs.'),
  );

  checks.push(
    await attempt('object storage', async () => {
      const objects = createObjectStore({ env: config.env, dataDir: config.dataDir, publicUrl: config.publicUrl, signingKey: deriveKey(config, 'object-urls'), s3: config.s3 });
      try {
        // The local store's folders are created at start anyway; making them here is harmless.
        if (objects.kind === 'fs') await objects.setup();
        await withTimeout(objects.ping(), 10000, 'the object store');
        return `${objects.kind} reachable; buckets ${objects.bucketName('files')}, ${objects.bucketName('backups')} present`;
      } finally {
        await objects.close();
      }
    }, config.s3.endpoint ? 'Check S3_ENDPOINT and the keys, then run `sentineliq setup-storage` to create the buckets.' : 'Run `sentineliq setup-storage` or check that DATA_DIR is writable.'),
  );
  return checks;
}
