import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { API_KEY_SCOPES, isUuid, requireUser, workspaceAccess, type ApiKeyScope } from '../../http/auth.js';
import { enforce } from '../../http/rate-limit.js';
import type { Role } from '../policy/engine.js';
import { WorkspaceService } from './service.js';

const Name = Type.String({ minLength: 1, maxLength: 120, pattern: '\\S' });
const WorkspaceParams = Type.Object({ workspaceId: Type.String() });
const audit = (action: string, resource: string) => ({ audit: { action, resource } });

/** Workspaces (tenants), their members, invitations and API keys. */
export async function workspaceRoutes(app: FastifyInstance): Promise<void> {
  const service = new WorkspaceService(app.platform);
  const userId = (auth: unknown) => ((auth as { kind: string; userId?: string }).kind === 'user' ? (auth as { userId: string }).userId : undefined);

  app.post<{ Body: { name: string } }>(
    '/workspaces',
    { config: audit('workspace.create', 'workspace'), onRequest: requireUser, schema: { tags: ['workspaces'], summary: 'Create a workspace (you become its owner)', body: Type.Object({ name: Name }, { additionalProperties: false }) } },
    async (request, reply) => {
      const uid = userId(request.auth)!;
      await enforce(request, reply, 'workspace-create', uid);
      const workspace = await service.create(uid, request.body.name.trim());
      request.audit = { workspaceId: workspace.id, resourceId: workspace.id, description: `workspace "${workspace.name}" created` };
      return reply.status(201).send(workspace);
    },
  );

  app.get('/workspaces', { onRequest: requireUser, schema: { tags: ['workspaces'], summary: 'Workspaces I belong to' } }, async (request) => ({
    workspaces: await service.listForUser(userId(request.auth)!),
  }));

  app.get<{ Params: { workspaceId: string } }>(
    '/workspaces/:workspaceId',
    { onRequest: workspaceAccess('workspace:read', 'workspace'), schema: { tags: ['workspaces'], params: WorkspaceParams } },
    async (request) => ({ ...(await service.get(request.params.workspaceId)), role: request.workspace!.role }),
  );

  app.patch<{ Params: { workspaceId: string }; Body: { name: string } }>(
    '/workspaces/:workspaceId',
    { config: audit('workspace.rename', 'workspace'), onRequest: workspaceAccess('workspace:update', 'workspace'), schema: { tags: ['workspaces'], summary: 'Rename', params: WorkspaceParams, body: Type.Object({ name: Name }, { additionalProperties: false }) } },
    async (request, reply) => {
      await enforce(request, reply, 'workspace-update', request.params.workspaceId);
      const workspace = await service.rename(request.params.workspaceId, request.body.name.trim());
      request.audit = { resourceId: workspace.id, description: `renamed to "${workspace.name}"` };
      return workspace;
    },
  );

  app.delete<{ Params: { workspaceId: string } }>(
    '/workspaces/:workspaceId',
    { config: audit('workspace.delete', 'workspace'), onRequest: workspaceAccess('workspace:delete', 'workspace'), schema: { tags: ['workspaces'], summary: 'Delete the workspace and everything in it', params: WorkspaceParams } },
    async (request, reply) => {
      await service.delete(request.params.workspaceId);
      request.audit = { resourceId: request.params.workspaceId, description: 'workspace deleted' };
      return reply.status(204).send();
    },
  );

  // --- members
  app.get<{ Params: { workspaceId: string } }>(
    '/workspaces/:workspaceId/members',
    { onRequest: workspaceAccess('members:read', 'members'), schema: { tags: ['members'], params: WorkspaceParams } },
    async (request) => ({ members: await service.members(request.params.workspaceId) }),
  );

  app.patch<{ Params: { workspaceId: string; userId: string }; Body: { role: Role } }>(
    '/workspaces/:workspaceId/members/:userId',
    {
      config: audit('member.role_change', 'member'),
      onRequest: workspaceAccess('members:update', 'members', 'userId'),
      schema: { tags: ['members'], summary: 'Change a member\'s role', body: Type.Object({ role: Type.Enum(['owner', 'admin', 'analyst', 'viewer']) }, { additionalProperties: false }) },
    },
    async (request, reply) => {
      const { workspaceId, userId: memberId } = request.params;
      if (!isUuid(memberId)) throw new SiqError('SIQ_NOT_FOUND', 'No such member.');
      // Making or unmaking an owner is for owners only.
      if (request.body.role === 'owner' && request.workspace!.role !== 'owner') throw new SiqError('SIQ_FORBIDDEN', 'Only an owner can make someone an owner.');
      await enforce(request, reply, 'workspace-update', workspaceId);
      await service.changeRole(workspaceId, memberId, request.body.role, { userId: userId(request.auth), ip: request.ip });
      request.audit = { resourceId: memberId, description: `role set to ${request.body.role}`, metadata: { role: request.body.role } };
      return { userId: memberId, role: request.body.role };
    },
  );

  app.delete<{ Params: { workspaceId: string; userId: string } }>(
    '/workspaces/:workspaceId/members/:userId',
    { config: audit('member.remove', 'member'), onRequest: workspaceAccess('members:remove', 'members', 'userId'), schema: { tags: ['members'], summary: 'Remove a member' } },
    async (request, reply) => {
      const { workspaceId, userId: memberId } = request.params;
      if (!isUuid(memberId)) throw new SiqError('SIQ_NOT_FOUND', 'No such member.');
      await enforce(request, reply, 'workspace-update', workspaceId);
      await service.removeMember(workspaceId, memberId, { userId: userId(request.auth), ip: request.ip });
      request.audit = { resourceId: memberId, description: 'member removed' };
      return reply.status(204).send();
    },
  );

  // --- invitations
  app.post<{ Params: { workspaceId: string }; Body: { email: string; role: Exclude<Role, 'owner'> } }>(
    '/workspaces/:workspaceId/invitations',
    {
      config: audit('invitation.create', 'invitation'),
      onRequest: workspaceAccess('invitations:create', 'invitations'),
      schema: { tags: ['members'], summary: 'Invite someone by email', params: WorkspaceParams, body: Type.Object({ email: Type.String({ pattern: '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$', maxLength: 320 }), role: Type.Enum(['admin', 'analyst', 'viewer']) }, { additionalProperties: false }) },
    },
    async (request, reply) => {
      const { workspaceId } = request.params;
      await enforce(request, reply, 'invitation', workspaceId);
      const invitation = await service.invite(workspaceId, request.body.email, request.body.role, userId(request.auth));
      const link = `${app.platform.config.publicUrl}/invitations/accept#${invitation.token}`;
      const workspace = await service.get(workspaceId);
      const mail = await app.mailer.send({
        to: invitation.email,
        subject: `You are invited to the SentinelIQ workspace "${workspace.name}"`,
        text: `You were invited as ${invitation.role}. Accept within 7 days: ${link}\n(or POST /api/v1/invitations/accept with this invitation code: ${invitation.token})`,
      });
      request.audit = { resourceId: invitation.id, description: `invited ${invitation.email} as ${invitation.role}` };
      const { token: _token, ...shown } = invitation;
      return reply.status(201).send({ ...shown, emailSent: mail.delivered });
    },
  );

  app.get<{ Params: { workspaceId: string } }>(
    '/workspaces/:workspaceId/invitations',
    { onRequest: workspaceAccess('invitations:read', 'invitations'), schema: { tags: ['members'], params: WorkspaceParams } },
    async (request) => ({ invitations: await service.invitations(request.params.workspaceId) }),
  );

  app.delete<{ Params: { workspaceId: string; invitationId: string } }>(
    '/workspaces/:workspaceId/invitations/:invitationId',
    { config: audit('invitation.revoke', 'invitation'), onRequest: workspaceAccess('invitations:revoke', 'invitations', 'invitationId'), schema: { tags: ['members'], summary: 'Revoke a pending invitation' } },
    async (request, reply) => {
      if (!isUuid(request.params.invitationId)) throw new SiqError('SIQ_NOT_FOUND');
      await service.revokeInvitation(request.params.workspaceId, request.params.invitationId);
      request.audit = { resourceId: request.params.invitationId };
      return reply.status(204).send();
    },
  );

  app.post<{ Body: { invitationCode: string; password?: string; displayName?: string } }>(
    '/invitations/accept',
    {
      config: audit('invitation.accept', 'invitation'),
      schema: {
        tags: ['members'], summary: 'Accept an invitation: signed in as the invited address, or creating that account with a password',
        body: Type.Object({ invitationCode: Type.String({ minLength: 10, maxLength: 200 }), password: Type.Optional(Type.String({ maxLength: 256 })), displayName: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }),
      },
    },
    async (request, reply) => {
      await enforce(request, reply, 'sign-in', request.ip);
      const { invitationCode, password, displayName } = request.body;
      let tokens;
      if (request.headers.authorization) {
        await requireUser(request, reply);
      } else {
        const email = await service.invitationEmail(invitationCode);
        if (!email) throw new SiqError('SIQ_INVITATION_INVALID');
        if (!password) throw new SiqError('SIQ_VALIDATION', 'A password is needed to create the invited account (or sign in first and send the access token).');
        if (await app.identity.findUserByEmail(email)) throw new SiqError('SIQ_CONFLICT', 'An account with this email exists: sign in first, then accept.');
        await app.identity.createUser(email, password, displayName);
        tokens = await app.identity.signIn(email, password, { ip: request.ip, userAgent: request.headers['user-agent'] });
        request.auth = { kind: 'user', userId: tokens.user.id, sessionId: tokens.sessionId, email: tokens.user.email, isPlatformAdmin: false };
      }
      const auth = request.auth as { userId: string; email: string };
      const joined = await service.acceptInvitation(invitationCode, auth.userId, auth.email);
      request.audit = { workspaceId: joined.workspaceId, description: `${auth.email} joined as ${joined.role}` };
      return reply.status(200).send({ ...joined, ...(tokens ? { tokens } : {}) });
    },
  );

  // --- API keys
  app.post<{ Params: { workspaceId: string }; Body: { name: string; scopes: ApiKeyScope[]; expiresAt?: string } }>(
    '/workspaces/:workspaceId/apikeys',
    {
      config: audit('apikey.create', 'apikey'),
      onRequest: workspaceAccess('apikeys:create', 'apikeys'),
      schema: {
        tags: ['apikeys'], summary: 'Create an API key (shown once)', params: WorkspaceParams,
        body: Type.Object({ name: Name, scopes: Type.Array(Type.Enum([...API_KEY_SCOPES]), { minItems: 1, uniqueItems: true }), expiresAt: Type.Optional(Type.String({ format: 'date-time' })) }, { additionalProperties: false }),
      },
    },
    async (request, reply) => {
      const { workspaceId } = request.params;
      if (request.body.expiresAt && Date.parse(request.body.expiresAt) <= Date.now()) throw new SiqError('SIQ_VALIDATION', 'expiresAt must be in the future.');
      await enforce(request, reply, 'workspace-update', workspaceId);
      const key = await service.createApiKey(workspaceId, request.body, userId(request.auth));
      request.audit = { resourceId: key.id, description: `API key "${key.name}" created with scopes ${key.scopes.join(', ')}` };
      return reply.status(201).send(key);
    },
  );

  app.get<{ Params: { workspaceId: string } }>(
    '/workspaces/:workspaceId/apikeys',
    { onRequest: workspaceAccess('apikeys:read', 'apikeys'), schema: { tags: ['apikeys'], params: WorkspaceParams } },
    async (request) => ({ apiKeys: await service.apiKeys(request.params.workspaceId) }),
  );

  app.delete<{ Params: { workspaceId: string; keyId: string } }>(
    '/workspaces/:workspaceId/apikeys/:keyId',
    { config: audit('apikey.revoke', 'apikey'), onRequest: workspaceAccess('apikeys:revoke', 'apikeys', 'keyId'), schema: { tags: ['apikeys'], summary: 'Revoke an API key' } },
    async (request, reply) => {
      if (!isUuid(request.params.keyId)) throw new SiqError('SIQ_NOT_FOUND');
      await service.revokeApiKey(request.params.workspaceId, request.params.keyId, userId(request.auth));
      request.audit = { resourceId: request.params.keyId };
      return reply.status(204).send();
    },
  );
}
