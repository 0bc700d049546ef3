import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { isUuid, workspaceAccess } from '../../http/auth.js';
import { exportCsv, exportNdjson, queryAudit, verifyChain, type AuditQuery } from './service.js';

const Filters = Type.Object({
  from: Type.Optional(Type.String({ format: 'date-time' })),
  to: Type.Optional(Type.String({ format: 'date-time' })),
  userId: Type.Optional(Type.String()),
  action: Type.Optional(Type.String({ maxLength: 200 })),
  resource: Type.Optional(Type.String({ maxLength: 200 })),
  beforeSeq: Type.Optional(Type.Integer({ minimum: 1 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  format: Type.Optional(Type.Enum(['csv', 'ndjson'])),
});
type FilterQuery = { from?: string; to?: string; userId?: string; action?: string; resource?: string; beforeSeq?: number; limit?: number; format?: 'csv' | 'ndjson' };

function filters(request: FastifyRequest<{ Params: { workspaceId: string }; Querystring: FilterQuery }>): AuditQuery {
  const q = request.query;
  if (q.userId && !isUuid(q.userId)) throw new SiqError('SIQ_VALIDATION', 'userId must be a user id.');
  return {
    workspaceId: request.params.workspaceId,
    from: q.from ? new Date(q.from) : undefined,
    to: q.to ? new Date(q.to) : undefined,
    userId: q.userId,
    action: q.action,
    resource: q.resource,
    beforeSeq: q.beforeSeq,
    limit: q.limit,
  };
}

/** The workspace's audit log: query, streamed export, and chain verification. */
export async function auditRoutes(app: FastifyInstance): Promise<void> {
  const db = app.platform.db;

  app.get<{ Params: { workspaceId: string }; Querystring: FilterQuery }>(
    '/workspaces/:workspaceId/audit',
    { onRequest: workspaceAccess('audit:read', 'audit'), schema: { tags: ['audit'], summary: 'Audit entries, newest first (page with beforeSeq)', querystring: Filters } },
    async (request) => {
      const entries = await queryAudit(db, filters(request));
      return { entries, nextBeforeSeq: entries.length > 0 ? entries.at(-1)!.seq : null };
    },
  );

  app.get<{ Params: { workspaceId: string }; Querystring: FilterQuery }>(
    '/workspaces/:workspaceId/audit/export',
    { onRequest: workspaceAccess('audit:export', 'audit'), schema: { tags: ['audit'], summary: 'Export as CSV (default) or NDJSON, streamed', querystring: Filters } },
    async (request, reply) => {
      const { beforeSeq: _b, limit: _l, ...q } = filters(request);
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      if (request.query.format === 'ndjson') {
        reply.header('content-disposition', `attachment; filename="audit-${stamp}.ndjson"`);
        return reply.type('application/x-ndjson').send(exportNdjson(db, q));
      }
      reply.header('content-disposition', `attachment; filename="audit-${stamp}.csv"`);
      return reply.type('text/csv; charset=utf-8').send(exportCsv(db, q));
    },
  );

  app.get<{ Params: { workspaceId: string } }>(
    '/workspaces/:workspaceId/audit/verify',
    { onRequest: workspaceAccess('audit:read', 'audit'), schema: { tags: ['audit'], summary: 'Recompute the hash chain and name the first broken link' } },
    async (request) => verifyChain(db, request.params.workspaceId),
  );
}
