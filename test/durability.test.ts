import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './helpers/postgres.js';
import { freePort } from './helpers/ports.js';
import { testDatabaseUrl } from './helpers/services.js';

const bin = fileURLToPath(new URL('../bin/sentineliq.js', import.meta.url));
const password = 'Kill-Nine-Survivor-2026';
const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function startServer(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  let output = '';
  const child = spawn(process.execPath, [bin, 'start'], { env: { PATH: process.env.PATH, LOG_LEVEL: 'info', ...env } });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  cleanups.push(() => void child.kill('SIGKILL'));
  return { child, output: () => output };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}

const implementations = [
  { name: 'embedded (PGlite)', enabled: true, postgres: false },
  { name: 'PostgreSQL', enabled: Boolean(testDatabaseUrl), postgres: true },
];

describe.each(implementations)('acknowledged events survive SIGKILL: $name', ({ enabled, postgres }) => {
  it.skipIf(!enabled)('every acknowledged event is stored after a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'siq-durable-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const env: Record<string, string> = { DATA_DIR: dataDir, PORT: String(await freePort()), ADMIN_EMAILS: 'durable@example.test' };
    if (postgres) {
      const db = await createTestDatabase();
      cleanups.push(db.drop);
      env.DATABASE_URL = db.url;
    }
    const base = `http://127.0.0.1:${env.PORT}/api/v1`;
    const first = startServer(env);
    const code = await waitFor(() => /setup code for durable@example\.test: (siqsetup_[A-Za-z0-9_-]+)/.exec(first.output())?.[1]);
    await waitFor(async () => ((await fetch(`${base.replace('/api/v1', '')}/health`)).status === 200 ? true : undefined));
    const setup = await (await fetch(`${base}/auth/setup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'durable@example.test', setupCode: code, password }) })).json() as { accessToken: string };
    const auth = { authorization: `Bearer ${setup.accessToken}`, 'content-type': 'application/json' };
    const ws = await (await fetch(`${base}/workspaces`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'durable' }) })).json() as { id: string };
    const key = (await (await fetch(`${base}/workspaces/${ws.id}/apikeys`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'bulk', scopes: ['ingest'] }) })).json() as { key: string }).key;

    // Several senders in parallel, until the process is killed under them.
    const acked = new Set<number>();
    let next = 0;
    let killed = false;
    const sender = async () => {
      while (!killed) {
        const start = next;
        next += 200;
        const batch = Array.from({ length: 200 }, (_, i) => ({ seq: start + i, message: `durable event ${start + i}`, '@timestamp': '2026-11-20T00:00:00Z' }));
        try {
          const res = await fetch(`${base}/events`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(batch), signal: AbortSignal.timeout(20_000) });
          const body = (await res.json()) as { stored?: number };
          if (res.status === 200 && body.stored === 200) for (const e of batch) acked.add(e.seq);
        } catch {
          return; // the connection died with the process
        }
      }
    };
    const senders = Array.from({ length: 4 }, sender);
    await waitFor(() => (acked.size >= 4000 ? true : undefined));
    first.child.kill('SIGKILL');
    killed = true;
    await Promise.all(senders);
    await exited(first.child);
    expect(acked.size).toBeGreaterThanOrEqual(4000);

    const second = startServer(env);
    await waitFor(async () => ((await fetch(`${base.replace('/api/v1', '')}/health`)).status === 200 ? true : undefined));

    const login = await (await fetch(`${base}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'durable@example.test', password }) })).json() as { accessToken: string };
    const headers = { authorization: `Bearer ${login.accessToken}`, 'content-type': 'application/json' };
    const stored = new Set<number>();
    let searchAfter: unknown;
    for (;;) {
      const page = await (await fetch(`${base}/workspaces/${ws.id}/events/search`, { method: 'POST', headers, body: JSON.stringify({ from: '2026-11-19T00:00:00Z', to: '2026-11-21T00:00:00Z', size: 1000, fields: ['seq'], ...(searchAfter ? { searchAfter } : {}) }) })).json() as { events: Array<{ seq: number }>; nextSearchAfter: unknown };
      for (const e of page.events) stored.add(e.seq);
      searchAfter = page.nextSearchAfter;
      if (!searchAfter) break;
    }
    const lost = [...acked].filter((seq) => !stored.has(seq));
    expect(lost).toEqual([]);
    // The counters survived the kill and add up: stored is exactly what the store holds (it is
    // counted in the transaction that stores), received is stored + rejected + dropped.
    const { sources } = await (await fetch(`${base}/workspaces/${ws.id}/ingest/stats`, { headers })).json() as { sources: Record<string, { received: number; stored: number; rejected: number; dropped: number }> };
    expect(sources.http!.stored).toBe(stored.size);
    expect(sources.http!.received).toBe(sources.http!.stored + sources.http!.rejected + sources.http!.dropped);
    second.child.kill('SIGTERM');
    await exited(second.child);
  }, 180_000);
});
