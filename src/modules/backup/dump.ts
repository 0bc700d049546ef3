import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { pgcrypto } from '@electric-sql/pglite/contrib/pgcrypto';
import { pgDump } from '@electric-sql/pglite-tools/pg_dump';
import { SiqError } from '../../errors.js';
import type { PgliteDatabase } from '../../platform/db/pglite.js';
import { quoteIdentifier, type Database, type Queryable } from '../../platform/db/types.js';

/**
 * One portable format for both databases: a plain-SQL dump. PostgreSQL is dumped by the
 * `pg_dump` binary (`--format=plain --no-owner`), PGlite by pglite-tools' pg_dump (WASM, same
 * program). Either dump restores into either database: through `psql` into PostgreSQL, through
 * our own executor into PGlite (SQL text via `exec`, COPY blocks via PGlite's `/dev/blob`).
 * pg_dump's custom format would need pg_restore, which cannot restore into PGlite, and PGlite
 * cannot produce it — so embedded ↔ PostgreSQL moves would be impossible with it.
 */

/** Connection details for the binaries, with the password kept out of the argument list (ps). */
export function libpqEnv(url: string): { url: string; env: NodeJS.ProcessEnv } {
  const parsed = new URL(url);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (parsed.password) env.PGPASSWORD = decodeURIComponent(parsed.password);
  parsed.password = '';
  for (const key of ['uselibpqcompat']) parsed.searchParams.delete(key);
  return { url: parsed.toString(), env };
}

function toolError(tool: string, err: NodeJS.ErrnoException | Error, stderr = ''): SiqError {
  const missing = (err as NodeJS.ErrnoException).code === 'ENOENT' || /server version mismatch|aborting because of server version/i.test(stderr);
  if (missing) return new SiqError('SIQ_BACKUP_TOOL_MISSING', `${tool}: ${stderr.trim() || err.message}`);
  return new SiqError('SIQ_BACKUP_FAILED', `${tool} failed: ${stderr.trim().split('\n').slice(-3).join(' ') || err.message}`, { cause: err });
}

/** The SQL dump of the whole database as a stream (PGlite's tool returns its dump whole; embedded databases are small). */
export async function dumpDatabase(db: Database, databaseUrl?: string): Promise<Readable> {
  if (db.kind === 'pglite') {
    // pglite-tools drives pg_dump through the raw protocol, outside PGlite's query queue, so the
    // platform's own queries would interleave with pg_dump's transaction and settings. It dumps a
    // snapshot instead: the data directory copied (under the queue) into a private instance.
    const snapshot = await (db as PgliteDatabase).pglite.dumpDataDir('none');
    const clone = await PGlite.create({ loadDataDir: snapshot, extensions: { pg_trgm, pgcrypto } });
    try {
      const file = await pgDump({ pg: clone, args: ['--no-owner'] });
      return Readable.from(Buffer.from(await file.arrayBuffer()));
    } finally {
      await clone.close();
    }
  }
  if (!databaseUrl) throw new Error('the PostgreSQL URL is needed to dump');
  const { url, env } = libpqEnv(databaseUrl);
  const child = spawn('pg_dump', ['--format=plain', '--no-owner', '--encoding=UTF8', `--dbname=${url}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 10_000) stderr += d.toString();
  });
  const out = new PassThrough();
  child.on('error', (err) => out.destroy(toolError('pg_dump', err)));
  child.stdout.pipe(out, { end: false });
  child.on('close', (code) => {
    if (code === 0) out.end();
    else out.destroy(toolError('pg_dump', new Error(`exit code ${code}`), stderr));
  });
  return out;
}

/**
 * Reads a dump line by line with just enough lexing (quotes, dollar quotes, comments, COPY
 * blocks) to know where statements and rows are: it counts rows per table (COPY data lines or
 * INSERT statements) and tells the PGlite executor where COPY data starts and ends.
 */
export class DumpScanner {
  readonly rows = new Map<string, number>();
  private quote: string | null = null;
  private copyTable: string | null = null;

  /** What this line is, judged before it changes the lexer state. */
  feed(line: string): { kind: 'sql'; atStatementStart: boolean } | { kind: 'copy-start'; table: string } | { kind: 'copy-row'; table: string } | { kind: 'copy-end'; table: string } {
    if (this.copyTable) {
      const table = this.copyTable;
      if (line === '\\.') {
        this.copyTable = null;
        return { kind: 'copy-end', table };
      }
      this.rows.set(table, (this.rows.get(table) ?? 0) + 1);
      return { kind: 'copy-row', table };
    }
    const atStatementStart = this.quote === null;
    if (atStatementStart) {
      const copy = /^COPY (\S+) (?:\([^)]*\) )?FROM stdin;$/.exec(line);
      if (copy) {
        this.copyTable = copy[1]!;
        this.rows.set(this.copyTable, this.rows.get(this.copyTable) ?? 0);
        return { kind: 'copy-start', table: this.copyTable };
      }
      const insert = /^INSERT INTO (\S+) /.exec(line);
      if (insert) this.rows.set(insert[1]!, (this.rows.get(insert[1]!) ?? 0) + 1);
    }
    this.lex(line);
    return { kind: 'sql', atStatementStart };
  }

  private lex(line: string): void {
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (this.quote === null) {
        if (c === '-' && line[i + 1] === '-') return;
        if (c === "'" || c === '"') this.quote = c;
        else if (c === '$') {
          const tag = /^\$[A-Za-z_][A-Za-z0-9_]*\$|^\$\$/.exec(line.slice(i));
          if (tag) {
            this.quote = tag[0];
            i += tag[0].length - 1;
          }
        }
      } else if (this.quote === "'" || this.quote === '"') {
        if (c === this.quote) {
          if (line[i + 1] === this.quote) i++;
          else this.quote = null;
        }
      } else if (line.startsWith(this.quote, i)) {
        i += this.quote.length - 1;
        this.quote = null;
      }
    }
  }
}

/** Counts rows per table of a dump passing through (the counts go into the manifest). */
export function countingStream(scanner: DumpScanner): Transform {
  let rest = '';
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const text = rest + chunk.toString('utf8');
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) scanner.feed(line);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      if (rest) scanner.feed(rest);
      done();
    },
  });
}

/**
 * Makes a dump's statements portable between the two databases (only lines at a statement start
 * are touched): psql meta-commands (`\restrict`) go, settings one side lacks (PostgreSQL 17's
 * transaction_timeout from PGlite 18 dumps into a PostgreSQL 15) go, and privileges keep only
 * the grants to the tenant role — the owner of the source is not a role of the target.
 */
export function portableLine(line: string, tenantRole: boolean): string | null {
  if (/^\\(?:restrict|unrestrict)\b/.test(line)) return null;
  if (/^SET transaction_timeout\b/.test(line)) return null;
  let out = line.replace(/^ALTER DEFAULT PRIVILEGES FOR ROLE \S+ /, 'ALTER DEFAULT PRIVILEGES ');
  const privilege = /^(?:GRANT|REVOKE|ALTER DEFAULT PRIVILEGES) .* (?:TO|FROM) (\S+);$/.exec(out);
  if (privilege) {
    const role = privilege[1]!.replace(/"/g, '');
    if (role !== 'siq_tenant' || !tenantRole) return null;
  }
  if (/^(?:GRANT|REVOKE) \S+ (?:TO|FROM) /.test(out) && !/ ON /.test(out)) return null; // role memberships
  out = out.replace(/\r$/, '');
  return out;
}

/** Creates the tenant role where it is missing (as migration 0002 does); false when it cannot exist here. */
export async function prepareTenantRole(db: Queryable): Promise<boolean> {
  await db.exec(`DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    BEGIN
      CREATE ROLE siq_tenant NOLOGIN;
    EXCEPTION WHEN duplicate_object OR insufficient_privilege THEN
      NULL;
    END;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    BEGIN
      EXECUTE format('GRANT siq_tenant TO %I', current_user);
    EXCEPTION WHEN OTHERS THEN
      NULL;
    END;
  END IF;
END $$;`);
  const { rows } = await db.query<{ exists: boolean }>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') AS exists");
  return rows[0]?.exists === true;
}

async function* lines(sql: Readable): AsyncIterable<string> {
  const reader = createInterface({ input: sql, crlfDelay: Infinity });
  for await (const line of reader) yield line;
}

const COPY_BATCH_ROWS = 20_000;

/** Executes a dump in PGlite: SQL between COPY blocks through `exec`, COPY data in bounded batches through `/dev/blob`. */
export async function restoreIntoPglite(db: PgliteDatabase, sql: Readable): Promise<void> {
  const tenantRole = await prepareTenantRole(db);
  const scanner = new DumpScanner();
  let text: string[] = [];
  let copySql = '';
  let rows: string[] = [];
  const flushCopy = async () => {
    if (rows.length === 0) return;
    await db.pglite.query(copySql, [], { blob: new Blob([rows.join('\n') + '\n']) });
    rows = [];
  };
  for await (const line of lines(sql)) {
    const what = scanner.feed(line);
    if (what.kind === 'copy-row') {
      rows.push(line);
      if (rows.length >= COPY_BATCH_ROWS) await flushCopy();
      continue;
    }
    if (what.kind === 'copy-end') {
      await flushCopy();
      continue;
    }
    if (what.kind === 'copy-start') {
      if (text.length > 0) await db.exec(text.join('\n'));
      text = [];
      copySql = line.replace(/FROM stdin;$/, "FROM '/dev/blob'");
      continue;
    }
    const kept = what.atStatementStart ? portableLine(line, tenantRole) : line;
    if (kept !== null) text.push(kept);
  }
  if (text.length > 0) await db.exec(text.join('\n'));
  await db.exec('RESET ALL');
}

/** Executes a dump in PostgreSQL through psql, in one transaction, stopping at the first error. */
export async function restoreIntoPostgres(targetUrl: string, sql: Readable, tenantRole: boolean): Promise<void> {
  const { url, env } = libpqEnv(targetUrl);
  const child = spawn('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', `--dbname=${url}`, '-f', '-'], { env, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 10_000) stderr += d.toString();
  });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(toolError('psql', err)));
  });
  await spawned;
  const exited = once(child, 'close') as Promise<[number | null]>;
  const scanner = new DumpScanner();
  async function* filtered() {
    for await (const line of lines(sql)) {
      const what = scanner.feed(line);
      if (what.kind !== 'sql' || !what.atStatementStart) {
        yield `${line}\n`;
        continue;
      }
      const kept = portableLine(line, tenantRole);
      if (kept !== null) yield `${kept}\n`;
    }
  }
  try {
    await pipeline(Readable.from(filtered()), child.stdin);
  } catch (err) {
    child.kill();
    await exited;
    if (stderr) throw toolError('psql', err as Error, stderr);
    throw err;
  }
  const [code] = await exited;
  if (code !== 0) throw toolError('psql', new Error(`exit code ${code}`), stderr);
}

/** Tables of the public schema (an empty database has none). */
export async function userTables(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
  return rows.map((r) => r.name);
}

/** Drops and recreates the public schema: everything the platform stored is gone. */
export async function dropPublicSchema(db: Queryable): Promise<void> {
  await db.exec('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO PUBLIC;');
}

/** Rows per table, for the tables a manifest names (`public.name`). */
export async function countRows(db: Queryable, tables: readonly string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const name = table.replace(/"/g, '');
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ONLY ${quoteIdentifier(name)}`);
    counts[table] = rows[0]?.n ?? 0;
  }
  return counts;
}
