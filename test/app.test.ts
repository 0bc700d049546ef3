import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { resolveSecrets } from '../src/config/secrets.js';
import { SiqError } from '../src/errors.js';

const silent = pino({ level: 'silent' });

function embeddedConfig(extra: Record<string, string> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'siq-app-'));
  const { config, problems } = loadConfig({ DATA_DIR: dataDir, BODY_LIMIT: '4096', CORS_ORIGINS: 'https://console.example', ...extra });
  expect(problems).toEqual([]);
  return resolveSecrets(config);
}

describe('HTTP app on embedded defaults', () => {
  let app: FastifyInstance;
  let dataDir: string;

  beforeAll(async () => {
    const config = embeddedConfig();
    dataDir = config.dataDir;
    app = await buildApp(config, { logger: silent });
    // Test-only routes to exercise the body limit and the error handler.
    app.post('/test/echo', async (request) => ({ received: request.body }));
    app.get('/test/siq-error', async () => {
      throw new SiqError('SIQ_CONFLICT', 'The thing changed meanwhile.');
    });
    app.get('/test/crash', async () => {
      throw new Error('database password is hunter2');
    });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('reports health with every dependency named', async () => {
    const res = await app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ status: 'ok', service: 'sentineliq', version: expect.any(String), uptime: expect.any(Number), responseTime: expect.any(Number) });
    expect(new Date(body.timestamp).toString()).not.toBe('Invalid Date');
    expect(body.dependencies.database).toMatchObject({ status: 'up', kind: 'pglite', latencyMs: expect.any(Number) });
    expect(body.dependencies.cache).toMatchObject({ status: 'up', kind: 'memory' });
    expect(body.dependencies.objectStore).toMatchObject({ status: 'up', kind: 'fs' });
  });

  it('answers liveness and readiness probes', async () => {
    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ok', down: [] });
  });

  it('sets security headers and a request id on every response', async () => {
    const res = await app.inject({ method: 'GET', url: '/health' });
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("object-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('echoes a well-formed X-Request-Id and replaces a malformed one', async () => {
    const given = await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': 'shipper-42.a' } });
    expect(given.headers['x-request-id']).toBe('shipper-42.a');
    const bad = await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': 'has spaces\nand newline' } });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers an unknown route in the uniform error format', async () => {
    const res = await app.inject({ method: 'GET', url: '/no/such/route?x=1', headers: { 'x-request-id': 'req-404' } });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: { code: 'SIQ_ROUTE_NOT_FOUND', message: expect.stringContaining('/no/such/route'), requestId: 'req-404' } });
    expect(res.headers['x-request-id']).toBe('req-404');
  });

  it('refuses a body over the limit with 413 and the catalogue code', async () => {
    const res = await app.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ blob: 'x'.repeat(5000) }) });
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('SIQ_PAYLOAD_TOO_LARGE');
    const small = await app.inject({ method: 'POST', url: '/test/echo', payload: { ok: true } });
    expect(small.json()).toEqual({ received: { ok: true } });
  });

  it('maps malformed JSON, unsupported media types, catalogue errors and crashes to codes', async () => {
    const malformed = await app.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json' }, payload: '{"a":' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.code).toBe('SIQ_BAD_REQUEST');

    const media = await app.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/x-unknown' }, payload: 'zzz' });
    expect(media.statusCode).toBe(415);
    expect(media.json().error.code).toBe('SIQ_UNSUPPORTED_MEDIA_TYPE');

    const conflict = await app.inject({ method: 'GET', url: '/test/siq-error' });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json().error).toMatchObject({ code: 'SIQ_CONFLICT', message: 'The thing changed meanwhile.' });

    const crash = await app.inject({ method: 'GET', url: '/test/crash' });
    expect(crash.statusCode).toBe(500);
    expect(crash.json().error.code).toBe('SIQ_INTERNAL');
    expect(crash.body).not.toContain('hunter2');
  });

  it('allows CORS only for configured origins', async () => {
    const allowed = await app.inject({ method: 'GET', url: '/health/live', headers: { origin: 'https://console.example' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('https://console.example');
    const other = await app.inject({ method: 'GET', url: '/health/live', headers: { origin: 'https://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('exposes Prometheus metrics with request durations by route and dependency state', async () => {
    await app.inject({ method: 'GET', url: '/health' });
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/siq_http_request_duration_seconds_count\{method="GET",route="\/health",status="200"\} \d+/);
    expect(res.body).toMatch(/siq_dependency_up\{dependency="cache"\} 1/);
    expect(res.body).toContain('siq_process_cpu_seconds_total');
  });

  it('serves the OpenAPI document and UI at /api/docs', async () => {
    const json = await app.inject({ method: 'GET', url: '/api/docs/json' });
    expect(json.statusCode).toBe(200);
    expect(Object.keys(json.json().paths)).toEqual(expect.arrayContaining(['/health', '/health/ready', '/api/v1/system']));
    const ui = await app.inject({ method: 'GET', url: '/api/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toContain('text/html');
  });

  it('records the installation and reports it', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/system' });
    expect(res.json()).toMatchObject({ service: 'sentineliq', database: 'pglite', cache: 'memory', objectStore: 'fs' });
  });

  it('answers 503 SIQ_SHUTTING_DOWN once shutdown began', async () => {
    app.lifecycle.shuttingDown = true;
    try {
      const res = await app.inject({ method: 'GET', url: '/health' });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.code).toBe('SIQ_SHUTTING_DOWN');
      expect(res.headers['retry-after']).toBeDefined();
    } finally {
      app.lifecycle.shuttingDown = false;
    }
  });
});
