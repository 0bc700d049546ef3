// Bulk-load throughput of the Database interface's COPY on PGlite and (with BENCH_DATABASE_URL)
// PostgreSQL: small event-like rows into a table with a GIN full-text index, one connection.
import { cpus } from 'node:os';
import pg from 'pg';
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
