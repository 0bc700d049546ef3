import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../../test/helpers/postgres.js';
import { testDatabaseUrl } from '../../../test/helpers/services.js';
import { migrate } from '../../platform/db/migrate.js';
import { PgliteDatabase } from '../../platform/db/pglite.js';
import { PostgresDatabase } from '../../platform/db/postgres.js';
import type { Database } from '../../platform/db/types.js';
import { PartitionManager, TEXT_INDEX_PENDING_KB } from './partitions.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const implementations: Array<{ name: string; enabled: boolean; open: () => Promise<Database> }> = [
  { name: 'PGlite', enabled: true, open: () => PgliteDatabase.open() },
  {
    name: 'PostgreSQL', enabled: Boolean(testDatabaseUrl), open: async () => {
      const created = await createTestDatabase();
      const db = new PostgresDatabase({ url: created.url, poolSize: 2, connectTimeoutMs: 5000, idleTimeoutMs: 10_000, statementTimeoutMs: 30_000 });
      cleanups.push(async () => {
        await db.close();
        await created.drop();
      });
      return db;
    },
  },
];

describe.each(implementations)('day partitions: $name', ({ enabled, open }) => {
  it.skipIf(!enabled)('are created once per day, with the text index\'s larger pending list', async () => {
    const db = await open();
    if (db.kind === 'pglite') cleanups.push(() => db.close());
    await migrate(db);
    const day = Date.UTC(2026, 10, 20);
    await new PartitionManager(db).ensureFor([day + 1000, day + 86_399_000, day + 86_400_000]);
    // A second manager (another process) finds them and creates nothing twice.
    await new PartitionManager(db).ensureFor([day + 5000]);
    expect((await new PartitionManager(db).list()).map((p) => p.day)).toEqual(['2026-11-20', '2026-11-21']);
    const { rows } = await db.query<{ index: string; options: string[] | null; method: string }>(
      `SELECT c.relname AS index, c.reloptions AS options, am.amname AS method FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
       WHERE i.indrelid IN ('events_p20261120'::regclass, 'events_p20261121'::regclass) ORDER BY 1`);
    const gin = rows.filter((r) => r.method === 'gin');
    expect(gin.map((r) => r.index)).toEqual(['events_p20261120_search_idx', 'events_p20261121_search_idx']);
    for (const r of gin) expect(r.options).toEqual([`gin_pending_list_limit=${TEXT_INDEX_PENDING_KB}`]);
  });
});
