import type { Cache } from '../cache/types.js';
import type { Queryable } from '../db/types.js';
import type { JobRun, ScheduledJob } from './scheduler.js';

/**
 * Every job `schedule()` started, per platform (keyed by its cache, which all of a platform's
 * jobs share), so the admin API lists and runs them without knowing them. A job leaves the
 * registry when it is stopped. Jobs on another timer (a cron expression) register themselves
 * with `registerJob` and a handle of the same shape.
 */
export interface RegisteredJob {
  name: string;
  /** Interval of `schedule()` jobs; null for jobs on another timer. */
  intervalMs: number | null;
  /** A cron expression, for jobs that run on one. */
  cron?: string;
  description?: string;
  handle: ScheduledJob;
}

const registries = new WeakMap<Cache, Map<string, RegisteredJob>>();

export function registerJob(cache: Cache, job: RegisteredJob): void {
  let jobs = registries.get(cache);
  if (!jobs) registries.set(cache, (jobs = new Map()));
  jobs.set(job.name, job);
}

export function unregisterJob(cache: Cache, name: string, handle: ScheduledJob): void {
  const jobs = registries.get(cache);
  if (jobs?.get(name)?.handle === handle) jobs.delete(name);
}

/** The jobs scheduled on this platform, by name. */
export function listJobs(cache: Cache): RegisteredJob[] {
  return [...(registries.get(cache)?.values() ?? [])].sort((a, b) => a.name.localeCompare(b.name));
}

export function findJob(cache: Cache, name: string): RegisteredJob | undefined {
  return registries.get(cache)?.get(name);
}

/** Writes one run to `job_runs` (migration 0010): the durable history behind the cache's last run. */
export async function persistRun(db: Queryable, run: JobRun): Promise<void> {
  await db.query('INSERT INTO job_runs (job, started_at, duration_ms, ok, result, error) VALUES ($1, $2, $3, $4, $5, $6)', [
    run.job,
    run.startedAt,
    run.durationMs,
    run.ok,
    run.result === undefined ? null : JSON.stringify(run.result),
    run.error ?? null,
  ]);
}

/** The newest runs of a job from `job_runs`, newest first. */
export async function recentRuns(db: Queryable, name: string, limit = 20): Promise<JobRun[]> {
  const { rows } = await db.query<{ job: string; started_at: Date; duration_ms: number; ok: boolean; result: unknown; error: string | null }>(
    'SELECT job, started_at, duration_ms, ok, result, error FROM job_runs WHERE job = $1 ORDER BY started_at DESC, id DESC LIMIT $2',
    [name, Math.min(Math.max(limit, 1), 500)],
  );
  return rows.map((r) => ({ job: r.job, startedAt: r.started_at.toISOString(), durationMs: r.duration_ms, ok: r.ok, ...(r.result === null ? {} : { result: r.result }), ...(r.error === null ? {} : { error: r.error }) }));
}
