import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { requireUser } from '../../http/auth.js';
import { findJob, listJobs, recentRuns } from '../../platform/jobs/registry.js';

/** Route hook: a signed-in platform admin (API keys and other users are refused with 403). */
async function requirePlatformAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  await requireUser(request, reply);
  if (request.auth?.kind !== 'user' || !request.auth.isPlatformAdmin) throw new SiqError('SIQ_FORBIDDEN', 'Only platform admins may see and run the platform\'s jobs.');
}

const JobName = Type.Object({ name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,99}$' }) });

/**
 * The platform's scheduled jobs (every job `schedule()` started in this process: event
 * retention, notification delivery, data lifecycle, maintenance, backups…), for platform admins:
 * last run (shared through the cache, so a run in another process shows), durable history from
 * job_runs, and running a job now.
 */
export async function lifecycleRoutes(app: FastifyInstance): Promise<void> {
  const { cache, db } = app.platform;

  app.get('/admin/jobs', { onRequest: requirePlatformAdmin, schema: { tags: ['operations'], summary: 'Scheduled jobs with their last run (platform admins)' } }, async () => {
    const jobs = await Promise.all(
      listJobs(cache).map(async (job) => {
        const lastRun = (await job.handle.lastRun()) ?? (await recentRuns(db, job.name, 1))[0] ?? null;
        return { name: job.name, description: job.description ?? null, intervalMs: job.intervalMs, cron: job.cron ?? null, lastRun };
      }),
    );
    return { jobs };
  });

  app.get<{ Params: { name: string }; Querystring: { limit?: number } }>(
    '/admin/jobs/:name/runs',
    {
      onRequest: requirePlatformAdmin,
      schema: { tags: ['operations'], summary: 'Recorded runs of a job, newest first (platform admins)', params: JobName, querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })) }) },
    },
    async (request) => {
      if (!findJob(cache, request.params.name)) throw new SiqError('SIQ_NOT_FOUND', `No scheduled job is called "${request.params.name}".`);
      return { runs: await recentRuns(db, request.params.name, request.query.limit ?? 20) };
    },
  );

  app.post<{ Params: { name: string }; Querystring: { wait?: boolean } }>(
    '/admin/jobs/:name/run',
    {
      onRequest: requirePlatformAdmin,
      config: { audit: { action: 'admin.job.run', resource: 'job' } },
      schema: {
        tags: ['operations'],
        summary: 'Run a job now (platform admins); 409 SIQ_JOB_RUNNING while a run holds its lock in any process',
        description: 'By default waits for the run and returns it; with `wait=false` answers 202 as soon as the run started.',
        params: JobName,
        querystring: Type.Object({ wait: Type.Optional(Type.Boolean()) }),
      },
    },
    async (request, reply) => {
      const job = findJob(cache, request.params.name);
      if (!job) throw new SiqError('SIQ_NOT_FOUND', `No scheduled job is called "${request.params.name}".`);
      request.audit = { resourceId: job.name, description: `ran job ${job.name}` };
      const started = await job.handle.trigger();
      if (!started) throw new SiqError('SIQ_JOB_RUNNING');
      if (request.query.wait === false) {
        started.done.catch((err: unknown) => request.log.error({ err, job: job.name }, 'job run failed'));
        return reply.code(202).send({ started: true, job: job.name });
      }
      return { run: await started.done };
    },
  );
}
