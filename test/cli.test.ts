import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './helpers/ports.js';

const bin = fileURLToPath(new URL('../bin/sentineliq.js', import.meta.url));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'siq-cli-'));
  dirs.push(dir);
  return dir;
}

/** A clean environment: only what the platform needs plus the test's own settings. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn', ...extra };
}

function run(args: string[], extra: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: env(extra) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function waitForHealth(port: number, child: ChildProcess, timeoutMs = 30_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      return await fetch(`http://127.0.0.1:${port}/health`);
    } catch {
      if (Date.now() > deadline) throw new Error('server did not answer in time');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', (code) => resolve(code))));
}

describe('sentineliq CLI', () => {
  it('refuses to start in production with a weak JWT_SECRET and no ADMIN_EMAILS, naming both in one message', async () => {
    const result = await run(['start'], { NODE_ENV: 'production', DATABASE_URL: 'postgres://127.0.0.1:1/x', JWT_SECRET: 'changeme', BACKUP_ENCRYPTION_KEY: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', DATA_DIR: tempDir() });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/Invalid configuration \(2 problems\)/);
    expect(result.stderr).toMatch(/JWT_SECRET/);
    expect(result.stderr).toMatch(/ADMIN_EMAILS/);
    expect(result.stderr).not.toContain('changeme');
  });

  it('starts on embedded defaults, keeps its data across a restart, and stops cleanly on SIGTERM', async () => {
    const dataDir = tempDir();
    const port = await freePort();
    const settings = { DATA_DIR: dataDir, PORT: String(port) };

    const first = spawn(process.execPath, [bin, 'start'], { env: env(settings), stdio: 'ignore' });
    const health = await waitForHealth(port, first);
    expect(health.status).toBe(200);
    const body = (await health.json()) as { status: string; dependencies: Record<string, { kind: string; status: string }> };
    expect(body.status).toBe('ok');
    expect(body.dependencies.database!.kind).toBe('pglite');
    const system1 = (await (await fetch(`http://127.0.0.1:${port}/api/v1/system`)).json()) as { instance: { id: string; startCount: number } };
    expect(system1.instance.startCount).toBe(1);
    first.kill('SIGTERM');
    expect(await exited(first)).toBe(0);

    const second = spawn(process.execPath, [bin, 'start'], { env: env(settings), stdio: 'ignore' });
    try {
      expect((await waitForHealth(port, second)).status).toBe(200);
      const system2 = (await (await fetch(`http://127.0.0.1:${port}/api/v1/system`)).json()) as { instance: { id: string; startCount: number } };
      expect(system2.instance.id).toBe(system1.instance.id);
      expect(system2.instance.startCount).toBe(2);
    } finally {
      second.kill('SIGTERM');
      expect(await exited(second)).toBe(0);
    }
  }, 90_000);

  it('migrate prints a status per migration', async () => {
    const dataDir = tempDir();
    const first = await run(['migrate'], { DATA_DIR: dataDir });
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/0001_platform\s+applied-now/);
    const again = await run(['migrate', '--status'], { DATA_DIR: dataDir });
    expect(again.stdout).toMatch(/0001_platform\s+applied\s/);
  }, 60_000);

  it('doctor passes on embedded defaults and names an unreachable database with a fix', async () => {
    const ok = await run(['doctor'], { DATA_DIR: tempDir() });
    expect(ok.stdout).toMatch(/✓ database: pglite reachable/);
    expect(ok.code).toBe(0);
    const bad = await run(['doctor'], { DATA_DIR: tempDir(), DATABASE_URL: `postgres://nobody@127.0.0.1:${await freePort()}/x`, DATABASE_CONNECT_TIMEOUT_MS: '1000' });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/✗ database: /);
    expect(bad.stdout).toMatch(/fix: Check DATABASE_URL/);
  }, 60_000);

  it('setup-storage creates the buckets of the local store', async () => {
    const result = await run(['setup-storage'], { DATA_DIR: tempDir() });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/sentineliq-development-files/);
    expect(result.stdout).toMatch(/sentineliq-development-backups/);
  });

  it('version prints the package version', async () => {
    const result = await run(['version'], {});
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
