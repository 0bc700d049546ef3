import { join } from 'node:path';
import type { Config } from '../../config/load.js';
import { PgliteDatabase } from './pglite.js';
import { PostgresDatabase } from './postgres.js';
import type { Database } from './types.js';

export type { Database, Queryable, QueryResult } from './types.js';
export { migrate, migrationStatus, loadMigrations, type MigrationStatus } from './migrate.js';

/** PostgreSQL when DATABASE_URL is set, otherwise embedded PGlite under DATA_DIR/pglite. */
export async function createDatabase(config: Pick<Config, 'database' | 'dataDir'>, onError?: (err: Error) => void): Promise<Database> {
  const { database } = config;
  if (database.url) {
    return new PostgresDatabase({ ...database, url: database.url, onError });
  }
  return PgliteDatabase.open(join(config.dataDir, 'pglite'));
}
