import type { Cache } from '../cache/types.js';
import type { Logger } from '../log/logger.js';

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
  lastRun(): Promise<JobRun | null>;
  stop(): void;
}

/**
 * Runs a job every `intervalMs`, in one process at a time across all processes sharing the cache
 * (a lock with expiry, extended while the job runs), and records the last run — start, duration,
 * result or error — in the cache for the admin API. A failing run is logged and retried at the
 * next interval; it never stops the schedule.
 */
export function schedule(deps: { cache: Cache; logger: Logger }, name: string, intervalMs: number, job: () => Promise<unknown>): ScheduledJob {
  const lockMs = Math.max(60_000, Math.min(intervalMs, 15 * 60_000));
  const log = deps.logger.child({ component: 'jobs', job: name });
  const runNow = async (): Promise<JobRun | null> => {
    const lock = await deps.cache.acquireLock(`job:${name}`, lockMs);
    if (!lock) return null;
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
    return run;
  };
  const timer = setInterval(() => void runNow().catch((err: unknown) => log.error({ err }, 'scheduling failed')), intervalMs);
  timer.unref();
  return {
    runNow,
    async lastRun() {
      const raw = await deps.cache.get(`job:last:${name}`);
      return raw ? (JSON.parse(raw) as JobRun) : null;
    },
    stop: () => clearInterval(timer),
  };
}
