import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { Config } from '../../config/load.js';
import { from as copyFromStream } from 'pg-copy-streams';
import { encodeCopyRow } from './copy-encoding.js';
import { quoteIdentifier, type CopyOptions, type Database, type Queryable, type QueryResult } from './types.js';

export type PostgresOptions = Omit<Config['database'], 'url'> & {
  url: string;
  /** Called with errors of idle pooled connections (the server went away); they never crash the process. */
  onError?: (err: Error) => void;
};

// int8 (COUNT(*), bigserial) as a JS number, as PGlite returns it, so both implementations
// give the same shapes. Values above 2^53 are not expected in counts and ids.
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * Maps libpq's sslmode to node's TLS options. The driver has no "try TLS then fall back", so
 * `prefer` encrypts without verifying, like `require`; use verify-full in production.
 */
export function tlsOptions(sslmode: PostgresOptions['sslmode'], caFile?: string): false | ConnectionOptions {
  const ca = caFile ? readFileSync(caFile, 'utf8') : undefined;
  switch (sslmode) {
    case undefined:
    case 'disable':
      return false;
    case 'prefer':
    case 'require':
      return ca ? { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined } : { rejectUnauthorized: false };
    case 'verify-ca':
      return { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { ca, rejectUnauthorized: true };
  }
}

function splitSslmode(url: string): { url: string; sslmode?: PostgresOptions['sslmode'] } {
  const parsed = new URL(url);
  const mode = parsed.searchParams.get('sslmode') ?? undefined;
  parsed.searchParams.delete('sslmode');
  for (const key of ['sslcert', 'sslkey', 'sslrootcert', 'uselibpqcompat']) parsed.searchParams.delete(key);
  return { url: parsed.toString(), sslmode: mode as PostgresOptions['sslmode'] };
}

function wrapClient(client: pg.PoolClient): Queryable {
  return {
    async query<R>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
      const result = await client.query(sql, params as unknown[]);
      return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
  };
}

const COPY_CHUNK = 256 * 1024;

/** PostgreSQL through a connection pool (`pg`). */
export class PostgresDatabase implements Database {
  readonly kind = 'postgres' as const;
  readonly pool: pg.Pool;

  constructor(options: PostgresOptions) {
    const { url, sslmode: urlMode } = splitSslmode(options.url);
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs,
      idleTimeoutMillis: options.idleTimeoutMs,
      statement_timeout: options.statementTimeoutMs || undefined,
      ssl: tlsOptions(options.sslmode ?? urlMode, options.sslCaFile),
      application_name: 'sentineliq',
      types,
    });
    this.pool.on('error', (err) => options.onError?.(err));
  }

  async query<R = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
    const result = await this.pool.query(sql, params as unknown[]);
    return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn(wrapClient(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async copyFrom(table: string, columns: readonly string[], rows: Iterable<readonly unknown[]> | AsyncIterable<readonly unknown[]>, options: CopyOptions = {}): Promise<number> {
    const sql = `COPY ${quoteIdentifier(table)} (${columns.map(quoteIdentifier).join(', ')}) FROM STDIN`;
    const client = await this.pool.connect();
    let count = 0;
    // Rows go out in chunks of about COPY_CHUNK characters: one CopyData message (and one socket
    // write) per row costs more than encoding the row, on both sides of the connection.
    async function* chunks() {
      let chunk = '';
      for await (const row of rows) {
        count++;
        chunk += encodeCopyRow(row);
        if (chunk.length >= COPY_CHUNK) {
          yield chunk;
          chunk = '';
        }
      }
      if (chunk) yield chunk;
    }
    const then = options.then;
    try {
      if (then) await client.query('BEGIN');
      const stream = client.query(copyFromStream(sql));
      await pipeline(Readable.from(chunks()), stream);
      if (then) {
        await client.query(then.sql, then.params as unknown[] | undefined);
        await client.query('COMMIT');
      }
      return count;
    } catch (err) {
      if (then) await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }
}
