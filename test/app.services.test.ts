import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { createTestDatabase } from './helpers/postgres.js';
import { startS3Server } from './helpers/s3.js';
import { testDatabaseUrl, testRedisUrl } from './helpers/services.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

const enabled = Boolean(testDatabaseUrl && testRedisUrl);

async function waitFor(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(!enabled)('HTTP app on PostgreSQL, Redis and S3', () => {
  let app: FastifyInstance;
  let proxy: TcpProxy;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    const database = await createTestDatabase();
    cleanups.push(database.drop);
    const s3 = await startS3Server();
    cleanups.push(s3.stop);
    const redis = new URL(testRedisUrl!);
    proxy = await startTcpProxy(redis.hostname, Number(redis.port || 6379));
    cleanups.push(() => proxy.stop());
    const dataDir = mkdtempSync(join(tmpdir(), 'siq-app-svc-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));

    const { config, problems } = loadConfig({
      NODE_ENV: 'test',
      DATA_DIR: dataDir,
      DATABASE_URL: database.url,
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      REDIS_KEY_PREFIX: `siq-app-test-${Date.now()}:`,
      S3_ENDPOINT: s3.endpoint,
      S3_ACCESS_KEY: s3.accessKey,
      S3_SECRET_KEY: s3.secretKey,
      S3_BUCKET_PREFIX: `siqapp${Date.now().toString(36)}`,
      JWT_SECRET: 'k7#Qm2!vX9@pL4$wR8^tZ1&yN6*bC3(d',
    });
    expect(problems).toEqual([]);
    app = await buildApp(config, { logger: pino({ level: 'silent' }) });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('uses every server and names each in /health', async () => {
    const res = await app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    const { dependencies } = res.json();
    expect(dependencies.database).toMatchObject({ status: 'up', kind: 'postgres' });
    expect(dependencies.cache).toMatchObject({ status: 'up', kind: 'redis' });
    expect(dependencies.objectStore).toMatchObject({ status: 'up', kind: 's3' });
  });

  it('turns 503 naming the cache when Redis goes away, and 200 again when it returns, without a restart', async () => {
    await proxy.cut();
    const down = await app.inject({ method: 'GET', url: '/health' });
    expect(down.statusCode).toBe(503);
    const body = down.json();
    expect(body.status).toBe('error');
    expect(body.dependencies.cache.status).toBe('down');
    expect(body.dependencies.cache.error).toEqual(expect.any(String));
    expect(body.dependencies.database.status).toBe('up');
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.json()).toEqual({ status: 'error', down: ['cache'] });

    await proxy.restore();
    await waitFor(async () => (await app.inject({ method: 'GET', url: '/health' })).statusCode === 200);
    const up = await app.inject({ method: 'GET', url: '/health' });
    expect(up.json().dependencies.cache.status).toBe('up');
  });
});
