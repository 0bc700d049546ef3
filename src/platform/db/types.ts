/**
 * The relational store. `pglite.ts` runs real PostgreSQL compiled to WASM inside the process
 * (the embedded default); `postgres.ts` talks to a PostgreSQL 15+ server through a pool. Both
 * run the same SQL and the same migrations.
 */
export interface QueryResult<R> {
  rows: R[];
  /** Rows returned, or rows changed by INSERT/UPDATE/DELETE. */
  rowCount: number;
}

export interface Queryable {
  /** One statement with `$1…$n` parameters. Values are always sent as parameters, never spliced into SQL. */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** A script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface CopyOptions {
  then?: { sql: string; params?: readonly unknown[] };
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction on one connection: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Bulk-loads rows with COPY, the fastest way into PostgreSQL. `columns` name the table's
   * columns in row order; values are strings, numbers, booleans, Dates, null, or objects (sent as JSON).
   * Returns the number of rows written. All rows are written or none.
   *
   * `options.then` is one more statement run in the same transaction after the rows (e.g. one
   * that counts them): the rows and its effect commit together or not at all.
   */
  copyFrom(table: string, columns: readonly string[], rows: Iterable<readonly unknown[]> | AsyncIterable<readonly unknown[]>, options?: CopyOptions): Promise<number>;
  /** Throws when the database is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;

/** Quotes a trusted identifier (table or column, optionally schema-qualified) for SQL text. */
export function quoteIdentifier(name: string): string {
  if (!IDENTIFIER.test(name)) throw new Error(`Invalid SQL identifier: ${JSON.stringify(name)}`);
  return name.split('.').map((part) => `"${part}"`).join('.');
}
