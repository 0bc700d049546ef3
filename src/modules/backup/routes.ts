import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SiqError } from '../../errors.js';
import { requireUser } from '../../http/auth.js';
import type { BackupService } from './service.js';

/** Platform admins only: backups concern the whole installation, not one workspace. */
async function requirePlatformAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  await requireUser(request, reply);
  const auth = request.auth;
  if (auth?.kind !== 'user' || !auth.isPlatformAdmin) throw new SiqError('SIQ_FORBIDDEN', 'Backups are managed by platform admins only.');
}

/** `POST /admin/backups` runs a backup now (and verifies it); `GET /admin/backups` lists them with their verification. */
export function backupRoutes(service: BackupService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.post(
      '/admin/backups',
      { config: { audit: { action: 'backup.create', resource: 'backup' } }, onRequest: requirePlatformAdmin, schema: { tags: ['operations'], summary: 'Back up the platform now (database and files), verify it, apply retention' } },
      async (request, reply) => {
        const result = await service.run({ trigger: 'manual' });
        request.audit = { resourceId: result.manifest.id, description: `backup ${result.manifest.id} ${result.verification.ok ? 'written and verified' : 'written; verification FAILED'}` };
        return reply.status(201).send({
          id: result.manifest.id,
          createdAt: result.manifest.createdAt,
          schemaVersion: result.manifest.schemaVersion,
          sizeBytes: result.manifest.parts.dump.size + result.manifest.parts.objects.size,
          objects: result.manifest.objects,
          verification: result.verification,
          retention: result.retention,
        });
      },
    );
    app.get('/admin/backups', { onRequest: requirePlatformAdmin, schema: { tags: ['operations'], summary: 'Backups, newest first, with their verification' } }, async () => ({ items: await service.list() }));
  };
}
