import type { Cache, Lock } from '../cache/types.js';
import type { Queryable } from '../db/types.js';
import type { Logger } from '../log/logger.js';
import { persistRun, registerJob, unregisterJob } from './registry.js';

export interface JobRun {
  job: string;
  startedAt: string;
  durationMs: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export interface ScheduledJob {
  /** Runs now (if no process holds the job's lock); null when another run holds it. */
  runNow(): Promise<JobRun | null>;
  /** Takes the lock and starts a run without waiting for it: null when another run holds the lock. */
  trigger(): Promise<{ done: Promise<JobRun> } | null>;
  lastRun(): Promise<JobRun | null>;
  stop(): void;
}

/**
 * Runs a job every `intervalMs`, in one process at a time across all processes sharing the cache
 * (a lock with expiry, extended while the job runs), and records the last run — start, duration,
 * result or error — in the cache for the admin API. A failing run is logged and retried at the
 * next interval; it never stops the schedule. Every scheduled job is listed in the job registry
 * (`registry.ts`, the admin API's source); when `deps` has a database (a Platform does), each
 * run is also written to `job_runs`.
 */
export function schedule(deps: { cache: Cache; logger: Logger; db?: Queryable }, name: string, intervalMs: number, job: () => Promise<unknown>, options: { description?: string } = {}): ScheduledJob {
  const lockMs = Math.max(60_000, Math.min(intervalMs, 15 * 60_000));
  const log = deps.logger.child({ component: 'jobs', job: name });
  const trigger = async (): Promise<{ done: Promise<JobRun> } | null> => {
    const lock = await deps.cache.acquireLock(`job:${name}`, lockMs);
    if (!lock) return null;
    return { done: execute(lock) };
  };
  const execute = async (lock: Lock): Promise<JobRun> => {
    const keepAlive = setInterval(() => void lock.extend(lockMs), lockMs / 3);
    keepAlive.unref();
    const started = Date.now();
    let run: JobRun;
    try {
      const result = await job();
      run = { job: name, startedAt: new Date(started).toISOString(), durationMs: Date.now() - started, ok: true, result };
      log.info({ durationMs: run.durationMs, result }, `job ${name} finished`);
    } catch (err) {
      run = { job: name, startedAt: new Date(started).toISOString(), durationMs: Date.now() - started, ok: false, error: (err as Error).message };
      log.error({ err }, `job ${name} failed`);
    } finally {
      clearInterval(keepAlive);
      await lock.release();
    }
    await deps.cache.set(`job:last:${name}`, JSON.stringify(run));
    if (deps.db) await persistRun(deps.db, run).catch((err: unknown) => log.warn({ err }, 'the job run could not be recorded in job_runs'));
    return run;
  };
  const runNow = async (): Promise<JobRun | null> => {
    const started = await trigger();
    return started ? started.done : null;
  };
  const timer = setInterval(() => void runNow().catch((err: unknown) => log.error({ err }, 'scheduling failed')), intervalMs);
  timer.unref();
  const handle: ScheduledJob = {
    runNow,
    trigger,
    async lastRun() {
      const raw = await deps.cache.get(`job:last:${name}`);
      return raw ? (JSON.parse(raw) as JobRun) : null;
    },
    stop: () => {
      clearInterval(timer);
      unregisterJob(deps.cache, name, handle);
    },
  };
  registerJob(deps.cache, { name, intervalMs, description: options.description, handle });
  return handle;
}
