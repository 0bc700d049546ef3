import { createHmac } from 'node:crypto';
import type { Config } from '../config/load.js';
import { createCache, type Cache } from './cache/index.js';
import { createDatabase, migrate, type Database, type MigrationStatus } from './db/index.js';
import type { Logger } from './log/logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createObjectStore, type ObjectStore } from './objects/index.js';

/** The infrastructure one process runs on; domain modules reach it only through these interfaces. */
export interface Platform {
  config: Config;
  logger: Logger;
  db: Database;
  cache: Cache;
  objects: ObjectStore;
  metrics: Metrics;
  migrations: MigrationStatus[];
  close(): Promise<void>;
}

export interface InstanceInfo {
  id: string;
  createdAt: Date;
  lastStartedAt: Date;
  startCount: number;
}

/** A key for one purpose, derived from JWT_SECRET, so one leaked derived key exposes nothing else. */
export function deriveKey(config: Config, purpose: string): string {
  if (!config.security.jwtSecret) throw new Error('JWT_SECRET is not resolved yet');
  return createHmac('sha256', config.security.jwtSecret).update(`sentineliq:${purpose}`).digest('base64url');
}

/**
 * Connects every dependency, applies pending migrations (under the migration lock) and records
 * this start. Whatever was opened is closed again when a later step fails.
 */
export async function createPlatform(config: Config, logger: Logger, options: { migrate?: boolean } = {}): Promise<Platform> {
  const opened: Array<{ close(): Promise<void> }> = [];
  try {
    const db = await createDatabase(config, (err) => logger.warn({ component: 'db', err: err.message }, 'idle database connection failed'));
    opened.push(db);
    let migrations: MigrationStatus[] = [];
    if (options.migrate !== false) {
      migrations = await migrate(db);
      const now = migrations.filter((m) => m.state === 'applied-now');
      if (now.length > 0) logger.info({ component: 'db', applied: now.map((m) => m.name) }, `applied ${now.length} migration(s)`);
    }

    let lastCacheError = '';
    const cache = createCache(config.redis, (err) => {
      // ioredis reports every failed reconnect; log when the reason changes, not every attempt.
      if (err.message === lastCacheError) return;
      lastCacheError = err.message;
      logger.warn({ component: 'cache', err: err.message }, 'cache connection problem');
    });
    opened.push(cache);

    const objects = createObjectStore({
      env: config.env,
      dataDir: config.dataDir,
      publicUrl: config.publicUrl,
      signingKey: deriveKey(config, 'object-urls'),
      s3: config.s3,
    });
    opened.push(objects);
    await ensureStorage(objects, logger);

    const platform: Platform = {
      config,
      logger,
      db,
      cache,
      objects,
      metrics: createMetrics(),
      migrations,
      async close() {
        for (const resource of opened.reverse()) await resource.close().catch((err: unknown) => logger.warn({ err }, 'closing a dependency failed'));
      },
    };
    return platform;
  } catch (err) {
    for (const resource of opened.reverse()) await resource.close().catch(() => undefined);
    throw err;
  }
}

/**
 * The local store needs its directories; an S3 store may lack its buckets on first start. We
 * try to create them, and when the credentials may not (least privilege), say how to fix it
 * instead of failing: /health reports the store down until `sentineliq setup-storage` ran.
 */
async function ensureStorage(objects: ObjectStore, logger: Logger): Promise<void> {
  try {
    await objects.ping();
    return;
  } catch {
    // fall through to setup
  }
  try {
    const report = await objects.setup();
    logger.info({ component: 'objects', buckets: report.buckets }, 'object storage prepared');
  } catch (err) {
    logger.warn({ component: 'objects', err: (err as Error).message }, 'object storage is not ready: run `sentineliq setup-storage` with credentials that may create buckets');
  }
}

/** Records this start and returns the installation's record. */
export async function recordStart(db: Database): Promise<InstanceInfo> {
  const { rows } = await db.query<{ id: string; created_at: Date; last_started_at: Date; start_count: number }>(
    `INSERT INTO platform_instance (start_count) VALUES (1)
     ON CONFLICT (singleton) DO UPDATE SET start_count = platform_instance.start_count + 1, last_started_at = now()
     RETURNING id, created_at, last_started_at, start_count`,
  );
  const row = rows[0]!;
  return { id: row.id, createdAt: row.created_at, lastStartedAt: row.last_started_at, startCount: row.start_count };
}

export async function readInstance(db: Database): Promise<InstanceInfo | null> {
  const { rows } = await db.query<{ id: string; created_at: Date; last_started_at: Date; start_count: number }>('SELECT id, created_at, last_started_at, start_count FROM platform_instance');
  const row = rows[0];
  return row ? { id: row.id, createdAt: row.created_at, lastStartedAt: row.last_started_at, startCount: row.start_count } : null;
}
