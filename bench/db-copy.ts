// Bulk-load throughput of the Database interface's COPY on PGlite and (with BENCH_DATABASE_URL)
// PostgreSQL: small event-like rows into a table with a GIN full-text index, one connection.
//
// With BENCH_EVENTS_TABLE=1 (and BENCH_DATABASE_URL) it then measures the COPY ceiling of the
// real `events` table: events normalised and COPY-encoded beforehand (only the server's work is
// timed), Windows events and syslog-sized ones, with 1 and 2 connections and without each index
// in turn (BENCH_VARIANTS, BENCH_KINDS, BENCH_EVENT_ROWS choose).
import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { PartitionManager } from '../src/modules/events/partitions.js';
import { normalize } from '../src/modules/ingest/normalize.js';
import { eventCopyRow, EVENT_COLUMNS } from '../src/modules/ingest/pipeline.js';
import { migrate } from '../src/platform/db/migrate.js';
import { PgliteDatabase } from '../src/platform/db/pglite.js';
import { PostgresDatabase } from '../src/platform/db/postgres.js';
import type { Database } from '../src/platform/db/types.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 200_000);
const BATCH = 5_000;
const DDL = `CREATE TABLE bench_events (
  ts timestamptz NOT NULL, host text, msg text, doc jsonb,
  search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(msg, ''))) STORED);
CREATE INDEX ON bench_events USING gin (search);
CREATE INDEX ON bench_events (ts);`;

function row(i: number): unknown[] {
  return [new Date(Date.UTC(2026, 0, 1) + i * 10), `host-${i % 50}`, `sshd[${i % 9999}]: Failed password for user${i % 300} from 10.0.${i % 256}.${i % 200} port ${1024 + (i % 60000)} ssh2`, { 'event.action': 'ssh_login', i }];
}

async function measure(name: string, db: Database): Promise<void> {
  await db.exec('DROP TABLE IF EXISTS bench_events');
  await db.exec(DDL);
  const started = performance.now();
  for (let offset = 0; offset < ROWS; offset += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, ROWS - offset) }, (_, k) => row(offset + k));
    await db.copyFrom('bench_events', ['ts', 'host', 'msg', 'doc'], batch);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`${name.padEnd(10)} ${ROWS} rows in ${seconds.toFixed(2)} s = ${Math.round(ROWS / seconds).toLocaleString('en-US')} rows/s (batches of ${BATCH})`);
  await db.exec('DROP TABLE bench_events');
}

// --- the real events table
const N = Number(process.env.BENCH_EVENT_ROWS ?? 40_000);
const WINDOWS_DIR = process.env.WINDOWS_EVENTS_DIR ?? new URL('../../shared/data/windows-events/', import.meta.url).pathname;
const VARIANTS = (process.env.BENCH_VARIANTS ?? 'full,full-2conn,no-gin,no-search-column,no-btree,bare').split(',');

async function windowsEvents(limit: number): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  if (!existsSync(WINDOWS_DIR)) return out;
  for (const file of readdirSync(WINDOWS_DIR).filter((f) => f.endsWith('.ndjson.gz')).sort()) {
    for await (const line of createInterface({ input: createReadStream(join(WINDOWS_DIR, file)).pipe(createGunzip()), crlfDelay: Infinity })) {
      if (line.trim()) out.push(JSON.parse(line) as Record<string, unknown>);
      if (out.length >= limit) return out;
    }
  }
  return out;
}

function syslogEvent(i: number): Record<string, unknown> {
  return { '@timestamp': new Date(Date.UTC(2026, 10, 22, 10) + i).toISOString(), message: `Nov 22 10:00:00 bastion-${i % 20} sshd[${1000 + (i % 5000)}]: Failed password for user${i % 500} from 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} port ${1024 + (i % 60000)} ssh2`, 'host.name': `bastion-${i % 20}` };
}

async function eventsTable(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS siq_bench_copy');
  await admin.query('CREATE DATABASE siq_bench_copy');
  const target = new URL(url);
  target.pathname = '/siq_bench_copy';
  const db = new PostgresDatabase({ url: target.toString(), poolSize: 4, connectTimeoutMs: 5000, idleTimeoutMs: 10000, statementTimeoutMs: 0 });
  await migrate(db);

  const workspace = randomUUID();
  const receivedAt = new Date();
  for (const [kind, raw] of [['windows', await windowsEvents(N)], ['syslog', Array.from({ length: N }, (_, i) => syslogEvent(i))]] as const) {
    if (raw.length === 0 || !(process.env.BENCH_KINDS ?? 'windows,syslog').split(',').includes(kind)) continue;
    const events = raw.map((r) => normalize(r, 'bench', receivedAt));
    const batches: string[] = [];
    for (let i = 0; i < events.length; i += BATCH) batches.push(events.slice(i, i + BATCH).map((e) => eventCopyRow(randomUUID(), workspace, e, receivedAt)).join(''));
    const bytes = batches.reduce((n, b) => n + Buffer.byteLength(b), 0);
    await new PartitionManager(db).ensureFor(events.map((e) => e.ts.getTime()));
    const partitions = new Set(events.map((e) => e.ts.toISOString().slice(0, 10))).size;
    console.log(`\n${kind}: ${events.length} events, ${partitions} daily partitions, ${Math.round(bytes / events.length)} COPY bytes/event`);

    for (const variant of VARIANTS) {
      await db.exec('TRUNCATE events');
      const base = variant.replace(/-\dconn$/, '');
      const undo: string[] = [];
      const drop = async (sql: string, back: string) => {
        await db.exec(sql);
        undo.unshift(back);
      };
      if (['no-gin', 'no-search-column', 'bare'].includes(base)) await drop('DROP INDEX events_search_idx', 'CREATE INDEX events_search_idx ON events USING gin (search)');
      if (['no-search-column', 'bare'].includes(base)) await drop('ALTER TABLE events DROP COLUMN search', "ALTER TABLE events ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(message, ''))) STORED");
      if (['no-btree', 'bare'].includes(base)) {
        await drop('DROP INDEX events_ws_action_idx', 'CREATE INDEX events_ws_action_idx ON events (workspace_id, event_action, ts DESC)');
        await drop('DROP INDEX events_ws_host_idx', 'CREATE INDEX events_ws_host_idx ON events (workspace_id, host_name, ts DESC)');
        await drop('DROP INDEX events_ws_ts_idx', 'CREATE INDEX events_ws_ts_idx ON events (workspace_id, ts DESC, id)');
      }
      if (base === 'lz4') await drop('ALTER TABLE events ALTER COLUMN doc SET COMPRESSION lz4', 'ALTER TABLE events ALTER COLUMN doc SET COMPRESSION pglz');
      if (base === 'gin-nofastupdate') {
        await drop('DROP INDEX events_search_idx', 'SELECT 1');
        await drop('CREATE INDEX events_search_idx ON events USING gin (search) WITH (fastupdate = off)', 'DROP INDEX events_search_idx; CREATE INDEX events_search_idx ON events USING gin (search)');
      }
      const connections = Number(/(\d)conn$/.exec(variant)?.[1] ?? 1);
      const started = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: connections }, async () => {
        const client = await db.pool.connect();
        // `gin-pending-<n>mb`: a larger pending list of the text index, merged in bigger batches.
        const pending = /^gin-pending-(\d+)mb$/.exec(base)?.[1];
        await client.query(`SET gin_pending_list_limit = '${pending ?? 4}MB'`);
        try {
          while (next < batches.length) {
            const text = batches[next++]!;
            await pipeline(Readable.from([Buffer.from(text)]), client.query(copyFrom(`COPY events (${EVENT_COLUMNS.join(', ')}) FROM STDIN`)));
          }
        } finally {
          client.release();
        }
      }));
      const seconds = (performance.now() - started) / 1000;
      console.log(`  ${variant.padEnd(18)} ${Math.round(events.length / seconds).toLocaleString('en-US').padStart(8)} events/s`);
      for (const sql of undo) await db.exec(sql);
    }
  }
  await db.close();
  await admin.query('DROP DATABASE siq_bench_copy WITH (FORCE)');
  await admin.end();
}

console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model}`);
const lite = await PgliteDatabase.open();
await measure('pglite', lite);
await lite.close();

const url = process.env.BENCH_DATABASE_URL;
if (url) {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS siq_bench');
  await admin.query('CREATE DATABASE siq_bench');
  const target = new URL(url);
  target.pathname = '/siq_bench';
  const db = new PostgresDatabase({ url: target.toString(), poolSize: 2, connectTimeoutMs: 5000, idleTimeoutMs: 10000, statementTimeoutMs: 0 });
  await measure('postgres', db);
  await db.close();
  await admin.query('DROP DATABASE siq_bench');
  await admin.end();
} else {
  console.log('postgres   skipped (set BENCH_DATABASE_URL)');
}
if (url && process.env.BENCH_EVENTS_TABLE) await eventsTable(url);
