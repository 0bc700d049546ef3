import type { FastifyInstance } from 'fastify';
import { backupHealth, type BackupHealth } from '../modules/backup/service.js';
import { readInstance, type Platform } from '../platform/index.js';

export interface DependencyHealth {
  status: 'up' | 'down';
  /** Which implementation answered: pglite/postgres, memory/redis, fs/s3. */
  kind: string;
  latencyMs: number;
  error?: string;
}

export interface HealthReport {
  status: 'ok' | 'error';
  timestamp: string;
  service: string;
  version: string;
  uptime: number;
  responseTime: number;
  dependencies: { database: DependencyHealth; cache: DependencyHealth; objectStore: DependencyHealth };
  /** Backups: `fail` (the newest failed verification, or none verified within twice the schedule) makes /health 503; readiness ignores it. */
  backups: BackupHealth;
}

const processStarted = new Date();

async function checkBackups(platform: Platform): Promise<BackupHealth> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      (async () => {
        const instance = await readInstance(platform.db).catch(() => null);
        return backupHealth(platform.objects, platform.config, instance?.createdAt ?? processStarted);
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    return { status: 'unknown', detail: `backups could not be checked: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

const CHECK_TIMEOUT_MS = 2000;

async function check(kind: string, probe: () => Promise<void>): Promise<DependencyHealth> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: 'up', kind, latencyMs: Math.round(performance.now() - started) };
  } catch (err) {
    // Only the error's message: connection errors can carry hosts but never credentials here.
    return { status: 'down', kind, latencyMs: Math.round(performance.now() - started), error: (err as Error).message || String(err) };
  } finally {
    clearTimeout(timer);
  }
}

/** Checks every dependency in parallel, each bounded by a timeout, and records the result in /metrics. */
export async function checkHealth(platform: Platform): Promise<HealthReport> {
  const started = performance.now();
  const [database, cache, objectStore, backups] = await Promise.all([
    check(platform.db.kind, () => platform.db.ping()),
    check(platform.cache.kind, () => platform.cache.ping()),
    check(platform.objects.kind, () => platform.objects.ping()),
    checkBackups(platform),
  ]);
  const dependencies = { database, cache, objectStore };
  for (const [name, dep] of Object.entries(dependencies)) platform.metrics.dependencyUp.set({ dependency: name }, dep.status === 'up' ? 1 : 0);
  const allUp = database.status === 'up' && cache.status === 'up' && objectStore.status === 'up';
  return {
    status: allUp && backups.status !== 'fail' ? 'ok' : 'error',
    timestamp: new Date().toISOString(),
    service: 'sentineliq',
    version: platform.config.version,
    uptime: Math.round(process.uptime()),
    responseTime: Math.round(performance.now() - started),
    dependencies,
    backups,
  };
}

/**
 * `/health` for people and monitors (details, 503 naming what is down), `/health/live` for
 * orchestrators' liveness (the process answers), `/health/ready` for readiness (dependencies up
 * and not shutting down).
 */
export async function healthRoutes(app: FastifyInstance, opts: { platform: Platform; isShuttingDown: () => boolean }): Promise<void> {
  const { platform } = opts;
  app.get('/health', { schema: { tags: ['operations'], summary: 'Health of the platform and each dependency' } }, async (_req, reply) => {
    const report = await checkHealth(platform);
    return reply.status(report.status === 'ok' ? 200 : 503).send(report);
  });
  app.get('/health/live', { schema: { tags: ['operations'], summary: 'Liveness: the process answers' } }, async () => ({ status: 'ok' }));
  app.get('/health/ready', { schema: { tags: ['operations'], summary: 'Readiness: dependencies are up and the process is not shutting down' } }, async (_req, reply) => {
    if (opts.isShuttingDown()) return reply.status(503).send({ status: 'shutting_down' });
    const report = await checkHealth(platform);
    const down = Object.entries(report.dependencies).filter(([, d]) => d.status === 'down').map(([name]) => name);
    return reply.status(down.length === 0 ? 200 : 503).send({ status: down.length === 0 ? 'ok' : 'error', down });
  });
}
