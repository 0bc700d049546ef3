import { mkdirSync } from 'node:fs';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { pgcrypto } from '@electric-sql/pglite/contrib/pgcrypto';
import { encodeCopyRow } from './copy-encoding.js';
import { quoteIdentifier, type CopyOptions, type Database, type Queryable, type QueryResult } from './types.js';

type PGliteLike = Pick<PGlite, 'query' | 'exec'> | Transaction;

function wrap(target: PGliteLike): Queryable {
  return {
    async query<R>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
      const result = await target.query<R>(sql, params as unknown[]);
      return { rows: result.rows, rowCount: result.affectedRows || result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await target.exec(sql);
    },
  };
}

/**
 * Embedded PostgreSQL (PGlite). One connection inside the process: PGlite serialises queries
 * itself, and a transaction holds that connection until it ends.
 */
export class PgliteDatabase implements Database {
  readonly kind = 'pglite' as const;
  private readonly direct: Queryable;

  private constructor(private readonly db: PGlite) {
    this.direct = wrap(db);
  }

  /** Opens (and on first use initialises) the database in `dir`; `undefined` keeps it in memory. */
  static async open(dir?: string): Promise<PgliteDatabase> {
    if (dir) mkdirSync(dir, { recursive: true });
    const db = await PGlite.create(dir, { extensions: { pg_trgm, pgcrypto } });
    return new PgliteDatabase(db);
  }

  /** The PGlite instance itself, for tools that need it (pg_dump of backups, COPY from a blob). */
  get pglite(): PGlite {
    return this.db;
  }

  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    return this.direct.query<R>(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.direct.exec(sql);
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => fn(wrap(tx)));
  }

  async copyFrom(table: string, columns: readonly string[], rows: Iterable<readonly unknown[]> | AsyncIterable<readonly unknown[]>, options: CopyOptions = {}): Promise<number> {
    // PGlite reads COPY input from a virtual /dev/blob, so the batch is assembled first; callers
    // bound batch sizes (the ingest queue does), which keeps this bounded too.
    let text = '';
    let count = 0;
    for await (const row of rows) {
      text += encodeCopyRow(row);
      count++;
    }
    if (count === 0) return 0;
    const sql = `COPY ${quoteIdentifier(table)} (${columns.map(quoteIdentifier).join(', ')}) FROM '/dev/blob'`;
    // One string, encoded once: a Blob of one part per row costs an encoding call per row.
    const blob = new Blob([text]);
    const then = options.then;
    if (!then) await this.db.query(sql, [], { blob });
    else {
      await this.db.transaction(async (tx) => {
        await tx.query(sql, [], { blob });
        await tx.query(then.sql, (then.params ?? []) as unknown[]);
      });
    }
    return count;
  }

  async ping(): Promise<void> {
    await this.db.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (!this.db.closed) await this.db.close();
  }
}
