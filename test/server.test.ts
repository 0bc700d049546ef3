import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { resolveSecrets } from '../src/config/secrets.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function config(extra: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'siq-server-'));
  dirs.push(dir);
  const { config, problems } = loadConfig({ DATA_DIR: dir, ...extra });
  expect(problems).toEqual([]);
  return resolveSecrets(config);
}

describe('the listening server', () => {
  it('serves HTTPS when TLS files are configured', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'siq-tls-'));
    dirs.push(dir);
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    const app = await buildApp(config({ TLS_CERT_FILE: cert, TLS_KEY_FILE: key }), { logger: pino({ level: 'silent' }) });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = app.server.address() as AddressInfo;
      const result = await new Promise<{ status: number; body: string; hsts: string | undefined }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path: '/health/live', ca: readFileSync(cert) }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, hsts: res.headers['strict-transport-security'] as string | undefined }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(result.status).toBe(200);
      expect(JSON.parse(result.body)).toEqual({ status: 'ok' });
      expect(result.hsts).toBe('max-age=31536000; includeSubDomains');
    } finally {
      await app.close();
    }
  });

  it('finishes in-flight requests on close and then refuses new connections', async () => {
    const app = await buildApp(config(), { logger: pino({ level: 'silent' }) });
    let release!: () => void;
    const entered = new Promise<void>((resolve) => {
      app.get('/test/slow', async () => {
        resolve();
        await new Promise<void>((r) => (release = r));
        return { finished: true };
      });
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const inFlight = fetch(`http://127.0.0.1:${port}/test/slow`);
    await entered;
    app.lifecycle.shuttingDown = true;
    const closing = app.close();
    release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ finished: true });
    await closing;
    await expect(fetch(`http://127.0.0.1:${port}/health/live`)).rejects.toThrow();
  });
});
