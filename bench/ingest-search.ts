// End-to-end ingest and search latency, on embedded PGlite and (with BENCH_DATABASE_URL) PostgreSQL.
//
//   npm run bench -- ingest-search
//   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres BENCH_SEARCH_EVENTS=5000000 npm run bench -- ingest-search
//
// Ingest: events go through the real HTTP server (Elasticsearch _bulk) or a real TCP syslog
// connection, and count only once committed. Search: BENCH_SEARCH_EVENTS events over one day are
// loaded through the pipeline, then each query runs 30 times: p50/p95. BENCH_PARTS (default
// bulk,windows,tcp,search) picks the parts, e.g. BENCH_PARTS=bulk,windows,tcp to skip search.
import { createReadStream, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { pino } from 'pino';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { resolveSecrets } from '../src/config/secrets.js';
import { startListener } from '../src/modules/ingest/sources/stream-listeners.js';
import { WorkspaceService } from '../src/modules/workspaces/service.js';

const SEARCH_EVENTS = Number(process.env.BENCH_SEARCH_EVENTS ?? 1_000_000);
const HTTP_EVENTS = Number(process.env.BENCH_HTTP_EVENTS ?? 200_000);
// Which parts run (comma-separated): bulk (syslog-sized _bulk), windows, tcp, search.
const PARTS = new Set((process.env.BENCH_PARTS ?? 'bulk,windows,tcp,search').split(',').map((s) => s.trim()));
// Concurrent shippers (_bulk requests in flight) and TCP connections.
const SHIPPERS = Number(process.env.BENCH_SHIPPERS ?? 4);
const WINDOWS_DIR = process.env.WINDOWS_EVENTS_DIR ?? new URL('../../shared/data/windows-events/', import.meta.url).pathname;

function syslogLine(i: number): string {
  return `<38>Nov 22 10:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')} bastion-${i % 20} sshd[${1000 + (i % 5000)}]: Failed password for user${i % 500} from 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} port ${1024 + (i % 60000)} ssh2`;
}

async function loadWindowsEvents(limit: number): Promise<string[]> {
  if (!existsSync(WINDOWS_DIR)) return [];
  const lines: string[] = [];
  for (const file of readdirSync(WINDOWS_DIR).filter((f) => f.endsWith('.ndjson.gz')).sort()) {
    for await (const line of createInterface({ input: createReadStream(join(WINDOWS_DIR, file)).pipe(createGunzip()), crlfDelay: Infinity })) {
      if (line.trim()) lines.push(line.trim());
      if (lines.length >= limit) return lines;
    }
  }
  return lines;
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function target(name: string, databaseUrl?: string) {
  const dataDir = mkdtempSync(join(tmpdir(), 'siq-bench-'));
  const { config } = loadConfig({ DATA_DIR: dataDir, JWT_SECRET: 'bench-secret-0123456789abcdef0123456789', LOG_LEVEL: 'silent', BODY_LIMIT: String(64 * 1024 * 1024), INGEST_QUEUE_EVENTS: '200000', ...(databaseUrl ? { DATABASE_URL: databaseUrl, DATABASE_POOL_SIZE: '8', DATABASE_STATEMENT_TIMEOUT_MS: '0' } : {}) });
  const app = await buildApp(resolveSecrets(config), { logger: pino({ level: 'silent' }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const user = await app.identity.createUser('bench@example.test', 'Quartz-Lantern-4711');
  const ws = await new WorkspaceService(app.platform).create(user.id, 'bench');
  const key = (await new WorkspaceService(app.platform).createApiKey(ws.id, { name: 'bench', scopes: ['ingest'] }, user.id)).key;
  const auth = `Basic ${Buffer.from(`bench:${key}`).toString('base64')}`;
  const results: Record<string, string> = {};

  // --- HTTP bulk, BENCH_SHIPPERS (4) concurrent shippers, 2,000 events per request, from a worker thread
  const bulk = async (docs: string[], concurrency = SHIPPERS, per = 2000) => {
    const worker = new Worker(new URL('./shipper.mjs', import.meta.url), { workerData: { url: `http://127.0.0.1:${port}/_bulk`, auth, docs, concurrency, per } });
    const { seconds } = await new Promise<{ seconds: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    return docs.length / seconds;
  };
  // Each part starts on a quiet server: detection has caught up with the previous part, whose
  // dead tuples and text-index pending list are cleaned up first rather than by autovacuum in
  // the middle of the next measurement.
  const settle = async () => {
    await app.detection.idle();
    if (databaseUrl) {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      await client.query('VACUUM ANALYZE events');
      await client.query('CHECKPOINT');
      await client.end();
    } else await app.platform.db.exec('VACUUM ANALYZE events');
  };
  if (PARTS.has('bulk')) {
    const syslogDocs = Array.from({ length: HTTP_EVENTS }, (_, i) => JSON.stringify({ '@timestamp': new Date(Date.UTC(2026, 10, 22, 10) + i).toISOString(), message: syslogLine(i).slice(4), 'host.name': `bastion-${i % 20}` }));
    results['HTTP _bulk, syslog-sized JSON'] = `${Math.round(await bulk(syslogDocs)).toLocaleString('en-US')} events/s (${HTTP_EVENTS.toLocaleString('en-US')} events)`;
  }

  if (PARTS.has('windows')) {
    await settle();
    const windows = await loadWindowsEvents(HTTP_EVENTS);
    if (windows.length > 0) results['HTTP _bulk, real Windows events'] = `${Math.round(await bulk(windows)).toLocaleString('en-US')} events/s (${windows.length.toLocaleString('en-US')} events)`;
    else results['HTTP _bulk, real Windows events'] = 'skipped (no ../shared/data/windows-events)';
  }

  // --- syslog over TCP, BENCH_SHIPPERS (4) connections, newline framing; done when all are committed
  if (PARTS.has('tcp')) {
    const listener = await startListener(app.ingest, app.platform.logger, { protocol: 'syslog', transport: 'tcp', host: '127.0.0.1', port: 0, workspaceId: ws.id, batchSize: 5000 });
    const before = (await app.ingest.stats(ws.id)).syslog?.stored ?? 0;
    const n = HTTP_EVENTS;
    const parts = Array.from({ length: SHIPPERS }, (_, c) => {
      const lines: string[] = [];
      for (let i = c; i < n; i += SHIPPERS) lines.push(syslogLine(i));
      return `${lines.join('\n')}\n`;
    });
    await settle();
    const started = performance.now();
    await Promise.all(parts.map((text) => new Promise<void>((resolve, reject) => {
      const sock = connect(listener.port, '127.0.0.1', () => {
        sock.end(text, () => resolve());
      });
      sock.on('error', reject);
    })));
    while (((await app.ingest.stats(ws.id)).syslog?.stored ?? 0) - before < n) await new Promise((r) => setTimeout(r, 20));
    results['syslog over TCP (RFC 3164 sshd lines)'] = `${Math.round(n / ((performance.now() - started) / 1000)).toLocaleString('en-US')} events/s (${n.toLocaleString('en-US')} events)`;
    await listener.close();
  }

  // --- search over one day with SEARCH_EVENTS events
  if (PARTS.has('search')) {
    const day = Date.UTC(2026, 10, 23);
    const needleAt = Math.floor(SEARCH_EVENTS / 2);
    const loadStarted = performance.now();
    for (let off = 0; off < SEARCH_EVENTS; off += 20_000) {
      const items = Array.from({ length: Math.min(20_000, SEARCH_EVENTS - off) }, (_, k) => {
        const i = off + k;
        return { value: { '@timestamp': new Date(day + Math.floor((i / SEARCH_EVENTS) * 86_400_000)).toISOString(), message: i === needleAt ? 'needle zq7xk9 found here' : syslogLine(i).slice(4), 'host.name': `bastion-${i % 20}`, 'event.action': i % 7 === 0 ? 'ssh_login' : 'other', 'user.name': `user${i % 500}` } };
      });
      await app.ingest.ingest(ws.id, 'bench', items);
    }
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    results[`load for search (pipeline, ${SEARCH_EVENTS.toLocaleString('en-US')} events)`] = `${Math.round(SEARCH_EVENTS / loadSeconds).toLocaleString('en-US')} events/s`;
    await settle();

    const range = { from: new Date(day).toISOString(), to: new Date(day + 86_400_000).toISOString() };
    const headers = { authorization: `Bearer ${(await app.identity.signIn('bench@example.test', 'Quartz-Lantern-4711', {})).accessToken}`, 'content-type': 'application/json' };
    const time = async (label: string, path: string, body: object, check: (r: Record<string, unknown>) => boolean) => {
      const samples: number[] = [];
      for (let i = 0; i < 30; i++) {
        const t0 = performance.now();
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/workspaces/${ws.id}/${path}`, { method: 'POST', headers, body: JSON.stringify({ ...range, ...body }) });
        const json = (await res.json()) as Record<string, unknown>;
        samples.push(performance.now() - t0);
        if (!check(json)) throw new Error(`${label}: unexpected answer ${JSON.stringify(json).slice(0, 200)}`);
      }
      results[`search: ${label}`] = `p50 ${pct(samples, 50).toFixed(0)} ms, p95 ${pct(samples, 95).toFixed(0)} ms`;
    };
    await time('rare-term needle', 'events/search', { query: 'zq7xk9', size: 10 }, (r) => (r.events as unknown[]).length === 1);
    await time('field filter (host + action, 100 newest)', 'events/search', { query: 'host.name:bastion-7 AND event.action:ssh_login', size: 100 }, (r) => (r.events as unknown[]).length === 100);
    await time('date histogram, whole day', 'events/histogram', {}, (r) => (r.buckets as unknown[]).length > 0);
    await time('top-10 terms of user.name, whole day', 'events/terms', { field: 'user.name', size: 10 }, (r) => (r.terms as unknown[]).length === 10);
  }

  await app.close();
  rmSync(dataDir, { recursive: true, force: true });
  console.log(`\n### ${name}`);
  for (const [k, v] of Object.entries(results)) console.log(`| ${k} | ${v} |`);
}

console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model}`);
if (process.env.BENCH_TARGET !== 'postgres') await target('embedded (PGlite)');
const url = process.env.BENCH_DATABASE_URL;
if (url && process.env.BENCH_TARGET !== 'embedded') {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS siq_bench_e2e');
  await admin.query('CREATE DATABASE siq_bench_e2e');
  const target2 = new URL(url);
  target2.pathname = '/siq_bench_e2e';
  await target('PostgreSQL 15', target2.toString());
  await admin.query('DROP DATABASE siq_bench_e2e WITH (FORCE)');
  await admin.end();
}
