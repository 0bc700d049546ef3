import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { isUuid, workspaceAccess } from '../../http/auth.js';
import { enforce } from '../../http/rate-limit.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import { emitSecurityEvent } from '../security-events/service.js';
import { validatePolicy, type Role } from './engine.js';
import { presentPolicy } from './service.js';

/** A workspace's own policies (on top of the role defaults) and the explain call. */
export async function policyRoutes(app: FastifyInstance): Promise<void> {
  const db = app.platform.db;

  app.get<{ Params: { workspaceId: string } }>('/workspaces/:workspaceId/policies', { onRequest: workspaceAccess('policies:read', 'policies'), schema: { tags: ['policies'] } }, async (request) => ({
    policies: (await app.policy.listRows(request.params.workspaceId)).map(presentPolicy),
  }));

  const save = async (workspaceId: string, body: unknown, policyId: string | undefined, userId: string | undefined) => {
    const checked = validatePolicy(body);
    if (!checked.ok) throw new SiqError('SIQ_POLICY_INVALID', `The policy is invalid: ${checked.errors.join('; ')}.`, { details: checked.errors });
    const p = checked.policy;
    const row = await withWorkspace(db, workspaceId, async (tx) => {
      const params = [workspaceId, p.name, p.effect, p.actions, p.resources, JSON.stringify(p.conditions ?? {}), p.priority];
      const { rows } = policyId
        ? await tx.query<Parameters<typeof presentPolicy>[0]>('UPDATE policies SET name = $2, effect = $3, actions = $4, resources = $5, conditions = $6, priority = $7, updated_at = now() WHERE workspace_id = $1 AND id = $8 RETURNING *', [...params, policyId])
        : await tx.query<Parameters<typeof presentPolicy>[0]>('INSERT INTO policies (workspace_id, name, effect, actions, resources, conditions, priority, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *', [...params, userId ?? null]);
      return rows[0];
    });
    if (!row) throw new SiqError('SIQ_NOT_FOUND', 'No policy with that id.');
    await app.policy.invalidate(workspaceId);
    await emitSecurityEvent(app.platform, { type: 'policy.changed', severity: 'medium', workspaceId, userId, data: { policyId: row.id, name: row.name, effect: row.effect } });
    return presentPolicy(row);
  };
  const uid = (auth: unknown) => (auth as { userId?: string }).userId;

  app.post<{ Params: { workspaceId: string } }>(
    '/workspaces/:workspaceId/policies',
    { config: { audit: { action: 'policy.create', resource: 'policy' } }, onRequest: workspaceAccess('policies:write', 'policies'), schema: { tags: ['policies'], summary: 'Add a policy', body: Type.Object({}, { additionalProperties: true }) } },
    async (request, reply) => {
      await enforce(request, reply, 'workspace-update', request.params.workspaceId);
      const policy = await save(request.params.workspaceId, request.body, undefined, uid(request.auth));
      request.audit = { resourceId: policy.id, description: `policy "${policy.name}" (${policy.effect}, priority ${policy.priority}) added`, metadata: { policy } };
      return reply.status(201).send(policy);
    },
  );

  app.put<{ Params: { workspaceId: string; policyId: string } }>(
    '/workspaces/:workspaceId/policies/:policyId',
    { config: { audit: { action: 'policy.update', resource: 'policy' } }, onRequest: workspaceAccess('policies:write', 'policies', 'policyId'), schema: { tags: ['policies'], summary: 'Replace a policy', body: Type.Object({}, { additionalProperties: true }) } },
    async (request, reply) => {
      if (!isUuid(request.params.policyId)) throw new SiqError('SIQ_NOT_FOUND');
      await enforce(request, reply, 'workspace-update', request.params.workspaceId);
      const policy = await save(request.params.workspaceId, request.body, request.params.policyId, uid(request.auth));
      request.audit = { resourceId: policy.id, description: `policy "${policy.name}" changed`, metadata: { policy } };
      return policy;
    },
  );

  app.delete<{ Params: { workspaceId: string; policyId: string } }>(
    '/workspaces/:workspaceId/policies/:policyId',
    { config: { audit: { action: 'policy.delete', resource: 'policy' } }, onRequest: workspaceAccess('policies:delete', 'policies', 'policyId'), schema: { tags: ['policies'], summary: 'Delete a policy' } },
    async (request, reply) => {
      const { workspaceId, policyId } = request.params;
      if (!isUuid(policyId)) throw new SiqError('SIQ_NOT_FOUND');
      const result = await withWorkspace(db, workspaceId, (tx) => tx.query('DELETE FROM policies WHERE workspace_id = $1 AND id = $2', [workspaceId, policyId]));
      if (result.rowCount === 0) throw new SiqError('SIQ_NOT_FOUND', 'No policy with that id.');
      await app.policy.invalidate(workspaceId);
      await emitSecurityEvent(app.platform, { type: 'policy.changed', severity: 'medium', workspaceId, userId: uid(request.auth), data: { policyId, deleted: true } });
      request.audit = { resourceId: policyId, description: 'policy deleted' };
      return reply.status(204).send();
    },
  );

  app.post<{ Params: { workspaceId: string }; Body: { action: string; resource: string; userId?: string; role?: Role; ip?: string; time?: string } }>(
    '/workspaces/:workspaceId/policies/explain',
    {
      config: { audit: false },
      onRequest: workspaceAccess('policies:read', 'policies'),
      schema: {
        tags: ['policies'], summary: 'Which policy decides an action, and why',
        body: Type.Object({
          action: Type.String({ minLength: 1, maxLength: 200 }),
          resource: Type.String({ minLength: 1, maxLength: 500 }),
          userId: Type.Optional(Type.String()),
          role: Type.Optional(Type.Enum(['owner', 'admin', 'analyst', 'viewer'])),
          ip: Type.Optional(Type.String({ maxLength: 64 })),
          time: Type.Optional(Type.String({ format: 'date-time' })),
        }, { additionalProperties: false }),
      },
    },
    async (request) => {
      const { workspaceId } = request.params;
      const body = request.body;
      let role = body.role ?? request.workspace!.role;
      if (body.userId) {
        if (!isUuid(body.userId)) throw new SiqError('SIQ_NOT_FOUND', 'No such member.');
        const { rows } = await db.query<{ role: Role }>('SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2', [workspaceId, body.userId]);
        if (!rows[0]) throw new SiqError('SIQ_NOT_FOUND', 'No such member.');
        role = rows[0].role;
      }
      // Resources are always inside this workspace: a path naming another workspace is refused.
      const path = body.resource.startsWith('workspace/') ? body.resource : `workspace/${workspaceId}/${body.resource}`;
      if (!path.startsWith(`workspace/${workspaceId}/`) && path !== `workspace/${workspaceId}`) throw new SiqError('SIQ_VALIDATION', 'The resource must be inside this workspace.');
      return app.policy.explain(workspaceId, { userId: body.userId, role }, body.action, { type: path.split('/')[2] ?? 'workspace', path }, { ip: body.ip ?? request.ip, time: body.time ? new Date(body.time) : new Date() });
    },
  );
}
