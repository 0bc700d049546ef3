import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatOf, ingestFile } from '../src/modules/ingest/sources/file.js';
import { testDatabaseUrl } from './helpers/services.js';
import { buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from './helpers/app.js';

const dir = mkdtempSync(join(tmpdir(), 'siq-files-'));
let t: TestApp & { databaseUrl?: string };
let owner: TestUser;
let ws: { id: string };

beforeAll(async () => {
  t = await buildTestApp({}, { postgres: Boolean(testDatabaseUrl) });
  owner = await buildUser(t.app);
  ws = await buildWorkspace(t.app, owner);
});
afterAll(async () => {
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

const count = async (query: string) =>
  (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/count`, headers: owner.headers, payload: { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', query } })).json().count as number;

describe('file ingestion', () => {
  it('guesses formats from names', () => {
    expect([formatOf('a.ndjson.gz'), formatOf('b.json'), formatOf('/var/log/auth.log'), formatOf('/var/log/messages.1'), formatOf('x.jsonl')]).toEqual(['ndjson', 'json', 'syslog', 'syslog', 'ndjson']);
  });

  it('loads gzip NDJSON, a JSON array and syslog lines, rejecting bad lines alone', async () => {
    const ndjson = join(dir, 'events.ndjson.gz');
    writeFileSync(ndjson, gzipSync(Array.from({ length: 5000 }, (_, i) => JSON.stringify({ '@timestamp': '2026-11-20T00:00:00Z', tag: 'file-nd', i })).concat(['{oops']).join('\r\n')));
    const progress: number[] = [];
    const result = await ingestFile(t.app.ingest, ws.id, ndjson, { batchSize: 1000, onProgress: (p) => progress.push(p.stored) });
    expect(result).toMatchObject({ received: 5001, stored: 5000, rejected: 1 });
    expect(progress.length).toBeGreaterThanOrEqual(5);
    expect(await count('tag:file-nd')).toBe(5000);

    const json = join(dir, 'array.json');
    writeFileSync(json, JSON.stringify([{ tag: 'file-json' }, { tag: 'file-json' }]));
    expect((await ingestFile(t.app.ingest, ws.id, json)).stored).toBe(2);

    const syslog = join(dir, 'auth.log');
    writeFileSync(syslog, '<38>Nov 20 10:00:00 bastion sshd[1]: Failed password for root from 203.0.113.77 port 1 ssh2\nNov 20 10:00:01 bastion CRON[2]: plain line without priority\n');
    expect((await ingestFile(t.app.ingest, ws.id, syslog)).stored).toBe(2);
    expect(await count('source.ip:203.0.113.77 AND event.outcome:failure')).toBe(1);
  });

  it.skipIf(!testDatabaseUrl)('sentineliq ingest loads files with a progress bar', async () => {
    const file = join(dir, 'cli.ndjson');
    writeFileSync(file, Array.from({ length: 300 }, (_, i) => JSON.stringify({ tag: 'from-cli', i })).join('\n'));
    const bin = fileURLToPath(new URL('../bin/sentineliq.js', import.meta.url));
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [bin, 'ingest', file, '--workspace', ws.id], { env: { PATH: process.env.PATH, DATABASE_URL: t.databaseUrl!, DATA_DIR: dir, LOG_LEVEL: 'warn' } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`${file}: 300 received, 300 stored, 0 rejected`);
    expect(out.stderr).toContain('100%');
    expect(await count('tag:from-cli')).toBe(300);
  }, 60_000);
});
