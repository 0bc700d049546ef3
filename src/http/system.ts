import type { FastifyInstance } from 'fastify';
import { readInstance, type Platform } from '../platform/index.js';

/** What this installation is: version, environment, and its instance record. */
export async function systemRoutes(app: FastifyInstance, opts: { platform: Platform }): Promise<void> {
  const { platform } = opts;
  app.get('/system', { schema: { tags: ['operations'], summary: 'Version and installation record' } }, async () => {
    const instance = await readInstance(platform.db);
    return {
      service: 'sentineliq',
      version: platform.config.version,
      environment: platform.config.env,
      database: platform.db.kind,
      cache: platform.cache.kind,
      objectStore: platform.objects.kind,
      instance: instance && { id: instance.id, createdAt: instance.createdAt.toISOString(), lastStartedAt: instance.lastStartedAt.toISOString(), startCount: instance.startCount },
    };
  });
}
