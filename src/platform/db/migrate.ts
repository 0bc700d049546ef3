import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SiqError } from '../../errors.js';
import type { Database } from './types.js';

export interface Migration {
  /** File name without `.sql`, e.g. `0001_platform`; the numeric prefix orders them. */
  name: string;
  sql: string;
  checksum: string;
}

export type MigrationState =
  | 'applied' // applied by an earlier run, unchanged
  | 'applied-now' // applied by this run
  | 'pending' // not applied (only with `dryRun`)
  | 'changed' // applied, but the file no longer matches what ran
  | 'missing'; // recorded in the database, but no file has that name

export interface MigrationStatus {
  name: string;
  state: MigrationState;
  appliedAt?: Date;
  durationMs?: number;
}

export const defaultMigrationsDir = fileURLToPath(new URL('./migrations/', import.meta.url));

// Arbitrary but fixed: every process that migrates this database serialises on it.
const MIGRATION_LOCK_KEY = 7_311_540_201;

export function checksum(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex');
}

export function loadMigrations(dir: string = defaultMigrationsDir): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const sql = readFileSync(`${dir}/${file}`, 'utf8');
      return { name: file.slice(0, -4), sql, checksum: checksum(sql) };
    });
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  name text PRIMARY KEY,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  duration_ms integer NOT NULL
)`;

interface AppliedRow {
  name: string;
  checksum: string;
  applied_at: Date;
  duration_ms: number;
}

/**
 * Applies pending migrations, forward only. Each migration runs in its own transaction under a
 * transaction-scoped advisory lock, so processes that start together apply each migration once:
 * the second waits, then finds it applied. An applied migration whose file changed is an error
 * (SIQ_MIGRATION_CHANGED) and nothing after it runs; it is never silently run again.
 *
 * Returns a status per migration (results as data) unless a migration fails or changed.
 */
export async function migrate(db: Database, options: { migrations?: Migration[]; dryRun?: boolean } = {}): Promise<MigrationStatus[]> {
  const migrations = options.migrations ?? loadMigrations();
  const statuses = new Map<string, MigrationStatus>();

  const readApplied = async (q: Pick<Database, 'query'>) => {
    const { rows } = await q.query<AppliedRow>('SELECT name, checksum, applied_at, duration_ms FROM schema_migrations ORDER BY name');
    return new Map(rows.map((r) => [r.name, r]));
  };

  const checkUnchanged = (applied: Map<string, AppliedRow>) => {
    const changed = migrations.filter((m) => applied.has(m.name) && applied.get(m.name)!.checksum !== m.checksum);
    if (changed.length > 0) {
      throw new SiqError('SIQ_MIGRATION_CHANGED', `Applied migration${changed.length > 1 ? 's' : ''} changed since ${changed.length > 1 ? 'they' : 'it'} ran: ${changed.map((m) => m.name).join(', ')}. Restore the original file and put the change in a new migration.`, { details: { migrations: changed.map((m) => m.name) } });
    }
  };

  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(CREATE_TABLE);
  });

  for (const migration of migrations) {
    await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      const applied = await readApplied(tx);
      checkUnchanged(applied);
      const row = applied.get(migration.name);
      if (row) {
        statuses.set(migration.name, { name: migration.name, state: 'applied', appliedAt: row.applied_at, durationMs: row.duration_ms });
        return;
      }
      if (options.dryRun) {
        statuses.set(migration.name, { name: migration.name, state: 'pending' });
        return;
      }
      const started = performance.now();
      try {
        await tx.exec(migration.sql);
      } catch (err) {
        throw new SiqError('SIQ_MIGRATION_FAILED', `Migration ${migration.name} failed and was rolled back: ${(err as Error).message}`, { details: { migration: migration.name }, cause: err });
      }
      const durationMs = Math.round(performance.now() - started);
      await tx.query('INSERT INTO schema_migrations (name, checksum, duration_ms) VALUES ($1, $2, $3)', [migration.name, migration.checksum, durationMs]);
      statuses.set(migration.name, { name: migration.name, state: 'applied-now', appliedAt: new Date(), durationMs });
    });
  }

  const applied = await readApplied(db);
  const known = new Set(migrations.map((m) => m.name));
  for (const [name, row] of applied) {
    if (!known.has(name)) statuses.set(name, { name, state: 'missing', appliedAt: row.applied_at, durationMs: row.duration_ms });
  }
  return [...statuses.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Status of every migration without applying anything (used by `doctor` and `migrate --status`). */
export async function migrationStatus(db: Database, migrations: Migration[] = loadMigrations()): Promise<MigrationStatus[]> {
  const exists = await db.query<{ exists: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS exists");
  const applied = new Map<string, AppliedRow>();
  if (exists.rows[0]?.exists) {
    const { rows } = await db.query<AppliedRow>('SELECT name, checksum, applied_at, duration_ms FROM schema_migrations');
    for (const r of rows) applied.set(r.name, r);
  }
  const result: MigrationStatus[] = migrations.map((m) => {
    const row = applied.get(m.name);
    if (!row) return { name: m.name, state: 'pending' };
    return { name: m.name, state: row.checksum === m.checksum ? 'applied' : 'changed', appliedAt: row.applied_at, durationMs: row.duration_ms };
  });
  const known = new Set(migrations.map((m) => m.name));
  for (const [name, row] of applied) if (!known.has(name)) result.push({ name, state: 'missing', appliedAt: row.applied_at });
  return result.sort((a, b) => a.name.localeCompare(b.name));
}
