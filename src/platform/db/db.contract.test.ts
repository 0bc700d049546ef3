import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSiqError } from '../../errors.js';
import { createTestDatabase } from '../../../test/helpers/postgres.js';
import { testDatabaseUrl } from '../../../test/helpers/services.js';
import { checksum, migrate, migrationStatus, type Migration } from './migrate.js';
import { PgliteDatabase } from './pglite.js';
import { PostgresDatabase } from './postgres.js';
import type { Database } from './types.js';

interface Target {
  /** A new connection (pool or embedded instance) to the suite's database. */
  connect(): Promise<Database>;
  /** Whether two `connect()` results are separate clients that can race (true for PostgreSQL). */
  concurrentClients: boolean;
  cleanup(): Promise<void>;
}

const pgOptions = { poolSize: 5, connectTimeoutMs: 5000, idleTimeoutMs: 1000, statementTimeoutMs: 10000 };

const implementations: Array<{ name: string; enabled: boolean; setup(): Promise<Target> }> = [
  {
    name: 'pglite',
    enabled: true,
    async setup() {
      const db = await PgliteDatabase.open();
      return { connect: async () => db, concurrentClients: false, cleanup: () => db.close() };
    },
  },
  {
    name: 'postgres',
    enabled: Boolean(testDatabaseUrl),
    async setup() {
      const created = await createTestDatabase();
      const pools: Database[] = [];
      return {
        async connect() {
          const db = new PostgresDatabase({ ...pgOptions, url: created.url });
          pools.push(db);
          return db;
        },
        concurrentClients: true,
        async cleanup() {
          await Promise.all(pools.map((p) => p.close()));
          await created.drop();
        },
      };
    },
  },
];

function migration(name: string, sql: string): Migration {
  return { name, sql, checksum: checksum(sql) };
}

describe.each(implementations)('Database contract: $name', ({ enabled, setup }) => {
  let target: Target;
  let db: Database;

  beforeAll(async () => {
    if (!enabled) return;
    target = await setup();
    db = await target.connect();
  });
  afterAll(async () => {
    if (enabled) await target.cleanup();
  });

  it.skipIf(!enabled)('runs parameterized queries and returns the same value shapes', async () => {
    const { rows } = await db.query<{ n: number; t: Date; j: unknown; s: string; b: boolean }>(
      "SELECT count(*) AS n, '2026-01-02T03:04:05Z'::timestamptz AS t, $1::jsonb AS j, $2::text AS s, true AS b FROM generate_series(1, 3)",
      [JSON.stringify({ a: [1, 'x'] }), "O'Reilly; DROP TABLE x; --"],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.n).toBe(3);
    expect(rows[0]!.t).toBeInstanceOf(Date);
    expect(rows[0]!.t.toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect(rows[0]!.j).toEqual({ a: [1, 'x'] });
    expect(rows[0]!.s).toBe("O'Reilly; DROP TABLE x; --");
    expect(rows[0]!.b).toBe(true);
  });

  it.skipIf(!enabled)('reports affected rows', async () => {
    await db.exec('CREATE TABLE t_rowcount (id int); INSERT INTO t_rowcount SELECT generate_series(1, 7);');
    const result = await db.query('UPDATE t_rowcount SET id = id + 1 WHERE id > $1', [2]);
    expect(result.rowCount).toBe(5);
  });

  it.skipIf(!enabled)('commits a transaction and rolls back a failed one', async () => {
    await db.exec('CREATE TABLE t_tx (id int PRIMARY KEY, v text)');
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO t_tx VALUES ($1, $2)', [1, 'kept']);
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO t_tx VALUES ($1, $2)', [2, 'gone']);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO t_tx VALUES ($1, $2)', [3, 'gone']);
        await tx.query('INSERT INTO t_tx VALUES ($1, $2)', [1, 'duplicate']);
      }),
    ).rejects.toThrow();
    const { rows } = await db.query<{ id: number; v: string }>('SELECT id, v FROM t_tx ORDER BY id');
    expect(rows).toEqual([{ id: 1, v: 'kept' }]);
  });

  it.skipIf(!enabled)('bulk-copies rows with awkward characters intact', async () => {
    await db.exec('CREATE TABLE t_copy (id int, msg text, doc jsonb, at timestamptz, ok boolean)');
    const awkward = ['tab\there', 'new\nline', 'back\\slash \\N', 'crlf\r\n', 'quote \' and "', 'ünïcødé ✓', '', 'nul\0byte'];
    const rows: unknown[][] = awkward.map((msg, i) => [i, msg, { msg, nested: { i } }, new Date(Date.UTC(2026, 0, 1, 0, 0, i)), i % 2 === 0]);
    rows.push([99, null, null, null, null]);
    expect(await db.copyFrom('t_copy', ['id', 'msg', 'doc', 'at', 'ok'], rows)).toBe(rows.length);
    const back = await db.query<{ id: number; msg: string | null; doc: unknown; at: Date | null; ok: boolean | null }>('SELECT * FROM t_copy ORDER BY id');
    expect(back.rows).toHaveLength(rows.length);
    awkward.forEach((msg, i) => {
      const expected = msg.replace('\0', '');
      expect(back.rows[i]!.msg).toBe(expected);
      expect(back.rows[i]!.doc).toEqual({ msg: expected, nested: { i } });
      expect(back.rows[i]!.at!.toISOString()).toBe(new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString());
      expect(back.rows[i]!.ok).toBe(i % 2 === 0);
    });
    expect(back.rows.at(-1)).toEqual({ id: 99, msg: null, doc: null, at: null, ok: null });
  });

  it.skipIf(!enabled)('bulk-copies from an async iterable and writes nothing when one row is bad', async () => {
    await db.exec('CREATE TABLE t_copy2 (id int NOT NULL, v text)');
    async function* good() {
      for (let i = 0; i < 20_000; i++) yield [i, `row ${i}`];
    }
    expect(await db.copyFrom('t_copy2', ['id', 'v'], good())).toBe(20_000);
    await expect(db.copyFrom('t_copy2', ['id', 'v'], [[1, 'a'], ['not a number', 'b']])).rejects.toThrow();
    const { rows } = await db.query<{ n: number }>('SELECT count(*) AS n FROM t_copy2');
    expect(rows[0]!.n).toBe(20_000);
  });

  it.skipIf(!enabled)('commits the rows and a following statement together, or neither', async () => {
    await db.exec('CREATE TABLE t_copy3 (id int NOT NULL); CREATE TABLE t_copy3_count (n int NOT NULL CHECK (n < 100))');
    await db.exec('INSERT INTO t_copy3_count VALUES (0)');
    const count = (n: number) => ({ then: { sql: 'UPDATE t_copy3_count SET n = n + $1', params: [n] } });
    expect(await db.copyFrom('t_copy3', ['id'], [[1], [2]], count(2))).toBe(2);
    // The statement fails (the CHECK): the rows go too.
    await expect(db.copyFrom('t_copy3', ['id'], [[3]], count(500))).rejects.toThrow();
    // A bad row: the statement does not run.
    await expect(db.copyFrom('t_copy3', ['id'], [[4], ['x']], count(1))).rejects.toThrow();
    const rows = (await db.query<{ id: number }>('SELECT id FROM t_copy3 ORDER BY id')).rows.map((r) => r.id);
    const n = (await db.query<{ n: number }>('SELECT n FROM t_copy3_count')).rows[0]!.n;
    expect({ rows, n }).toEqual({ rows: [1, 2], n: 2 });
    // The connection is usable afterwards (no transaction left open).
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it.skipIf(!enabled)('refuses identifiers that are not plain names', async () => {
    await expect(db.copyFrom('t_copy2; DROP TABLE t_copy2', ['id'], [[1]])).rejects.toThrow(/Invalid SQL identifier/);
    await expect(db.copyFrom('t_copy2', ['id"; --'], [[1]])).rejects.toThrow(/Invalid SQL identifier/);
  });

  it.skipIf(!enabled)('applies migrations once, reports a status per migration, and refuses changed ones', async () => {
    const m1 = migration('0001_first', 'CREATE TABLE m_things (id int); INSERT INTO m_things VALUES (1);');
    const m2 = migration('0002_second', 'ALTER TABLE m_things ADD COLUMN name text;');
    const first = await migrate(db, { migrations: [m1, m2] });
    expect(first.map((s) => [s.name, s.state])).toEqual([['0001_first', 'applied-now'], ['0002_second', 'applied-now']]);

    const again = await migrate(db, { migrations: [m1, m2] });
    expect(again.map((s) => s.state)).toEqual(['applied', 'applied']);
    const { rows } = await db.query<{ n: number }>('SELECT count(*) AS n FROM m_things');
    expect(rows[0]!.n).toBe(1);

    const m3 = migration('0003_third', 'INSERT INTO m_things (id, name) VALUES (3, $$three$$);');
    expect((await migrationStatus(db, [m1, m2, m3])).map((s) => s.state)).toEqual(['applied', 'applied', 'pending']);

    const edited = migration('0002_second', 'ALTER TABLE m_things ADD COLUMN name varchar(10);');
    const err = await migrate(db, { migrations: [m1, edited, m3] }).catch((e: unknown) => e);
    expect(isSiqError(err, 'SIQ_MIGRATION_CHANGED')).toBe(true);
    expect((await migrationStatus(db, [m1, edited, m3])).map((s) => s.state)).toEqual(['applied', 'changed', 'pending']);
    const count = await db.query<{ n: number }>('SELECT count(*) AS n FROM m_things');
    expect(count.rows[0]!.n).toBe(1); // 0003 did not run after the refusal

    expect((await migrationStatus(db, [m1])).map((s) => [s.name, s.state])).toEqual([['0001_first', 'applied'], ['0002_second', 'missing']]);
  });

  it.skipIf(!enabled)('rolls back a failing migration whole', async () => {
    const bad = migration('0001_bad', 'CREATE TABLE m_half (id int); SELECT no_such_function();');
    const fresh = await target.connect();
    await fresh.exec('CREATE SCHEMA IF NOT EXISTS mig_fail; SET search_path TO mig_fail');
    const err = await migrate(fresh, { migrations: [bad] }).catch((e: unknown) => e);
    expect(isSiqError(err, 'SIQ_MIGRATION_FAILED')).toBe(true);
    const exists = await db.query<{ t: string | null }>("SELECT to_regclass('m_half')::text AS t");
    expect(exists.rows[0]!.t).toBeNull();
    await fresh.exec('SET search_path TO public');
  });

  it.skipIf(!enabled)('two processes migrating together apply each migration once', async () => {
    await db.exec('CREATE SCHEMA race; CREATE TABLE race.applied_log (name text)');
    const ms = Array.from({ length: 5 }, (_, i) => migration(`000${i + 1}_race`, `INSERT INTO race.applied_log VALUES ('m${i + 1}'); SELECT pg_sleep(0.02);`));
    // Separate pools against the same server race for real on PostgreSQL; PGlite is one process
    // with one connection, so concurrent calls there exercise the same lock path in-process.
    const a = await target.connect();
    const b = target.concurrentClients ? await target.connect() : a;
    const run = (d: Database) => migrate(d, { migrations: ms });
    const results = await Promise.all([run(a), run(b), run(a)]);
    const { rows } = await db.query<{ name: string; n: number }>('SELECT name, count(*)::int AS n FROM race.applied_log GROUP BY name ORDER BY name');
    expect(rows).toEqual(ms.map((_, i) => ({ name: `m${i + 1}`, n: 1 })));
    const appliedNow = results.flat().filter((s) => s.state === 'applied-now' && s.name.endsWith('_race')).length;
    expect(appliedNow).toBe(5);
  });

  it.skipIf(!enabled)('ping succeeds while open and fails after close', async () => {
    const extra = target.concurrentClients ? await target.connect() : await PgliteDatabase.open();
    await expect(extra.ping()).resolves.toBeUndefined();
    await extra.close();
    await expect(extra.ping()).rejects.toThrow();
  });
});

describe('PGlite on disk', () => {
  it('keeps data across close and reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'siq-pglite-'));
    try {
      const first = await PgliteDatabase.open(dir);
      await first.exec("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here');");
      await first.close();
      const second = await PgliteDatabase.open(dir);
      const { rows } = await second.query<{ v: string }>('SELECT v FROM kept');
      expect(rows).toEqual([{ v: 'still here' }]);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the shipped migrations', () => {
  it('apply cleanly on an empty embedded database', async () => {
    const db = await PgliteDatabase.open();
    try {
      const statuses = await migrate(db);
      expect(statuses.length).toBeGreaterThan(0);
      expect(statuses.every((s) => s.state === 'applied-now')).toBe(true);
    } finally {
      await db.close();
    }
  });
});
