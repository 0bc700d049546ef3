import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { enforce } from '../../http/rate-limit.js';
import { requireUser } from '../../http/auth.js';

const Email = Type.String({ minLength: 3, maxLength: 320, pattern: '^[^\\s@]+@[^\\s@]+$' });
const meta = (request: FastifyRequest) => ({ ip: request.ip, userAgent: request.headers['user-agent'] });

/** Sign-in, first-run setup, token refresh, sign-out and the user's own sessions. */
export async function identityRoutes(app: FastifyInstance): Promise<void> {
  const identity = app.identity;

  app.post<{ Body: { email: string; setupCode: string; password: string; displayName?: string } }>(
    '/auth/setup',
    {
      config: { audit: { action: 'auth.setup', resource: 'user' } },
      schema: {
        tags: ['auth'], summary: 'Set the first admin password with the setup code printed at first start',
        body: Type.Object({ email: Email, setupCode: Type.String({ minLength: 10, maxLength: 200 }), password: Type.String({ maxLength: 256 }), displayName: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }),
      },
    },
    async (request, reply) => {
      await enforce(request, reply, 'sign-in', request.ip);
      const tokens = await identity.completeSetup(request.body.email, request.body.setupCode, request.body.password, request.body.displayName, meta(request));
      request.audit = { resourceId: tokens.user.id, description: `first-run setup completed for ${tokens.user.email}` };
      request.auth = { kind: 'user', userId: tokens.user.id, sessionId: tokens.sessionId, email: tokens.user.email, isPlatformAdmin: tokens.user.isPlatformAdmin };
      return tokens;
    },
  );

  app.post<{ Body: { email: string; password: string } }>(
    '/auth/login',
    {
      config: { audit: { action: 'auth.sign_in', resource: 'session' } },
      schema: { tags: ['auth'], summary: 'Sign in: an access token and a refresh token', body: Type.Object({ email: Email, password: Type.String({ maxLength: 256 }) }, { additionalProperties: false }) },
    },
    async (request, reply) => {
      await enforce(request, reply, 'sign-in', request.ip);
      try {
        const tokens = await identity.signIn(request.body.email, request.body.password, meta(request));
        request.audit = { resourceId: tokens.sessionId, description: `${tokens.user.email} signed in` };
        request.auth = { kind: 'user', userId: tokens.user.id, sessionId: tokens.sessionId, email: tokens.user.email, isPlatformAdmin: tokens.user.isPlatformAdmin };
        return tokens;
      } catch (err) {
        const retry = (err as SiqError).details as { retryAfterSeconds?: number } | undefined;
        if (retry?.retryAfterSeconds) reply.header('retry-after', retry.retryAfterSeconds);
        throw err;
      }
    },
  );

  app.post<{ Body: { refreshToken: string } }>(
    '/auth/refresh',
    {
      config: { audit: { action: 'auth.refresh', resource: 'session' } },
      schema: { tags: ['auth'], summary: 'Exchange a refresh token for new tokens (the old one stops working)', body: Type.Object({ refreshToken: Type.String({ minLength: 10, maxLength: 200 }) }, { additionalProperties: false }) },
    },
    async (request) => {
      const tokens = await identity.refresh(request.body.refreshToken, meta(request));
      request.audit = { resourceId: tokens.sessionId };
      request.auth = { kind: 'user', userId: tokens.user.id, sessionId: tokens.sessionId, email: tokens.user.email, isPlatformAdmin: tokens.user.isPlatformAdmin };
      return tokens;
    },
  );

  app.post('/auth/logout', { config: { audit: { action: 'auth.sign_out', resource: 'session' } }, onRequest: requireUser, schema: { tags: ['auth'], summary: 'Sign out this session' } }, async (request, reply) => {
    const auth = request.auth!;
    if (auth.kind !== 'user') throw new SiqError('SIQ_FORBIDDEN');
    await identity.revokeFamily(auth.sessionId, 'signed out');
    request.audit = { resourceId: auth.sessionId };
    return reply.status(204).send();
  });

  app.get('/auth/me', { onRequest: requireUser, schema: { tags: ['auth'], summary: 'The signed-in user and their workspaces' } }, async (request) => {
    const auth = request.auth!;
    if (auth.kind !== 'user') throw new SiqError('SIQ_FORBIDDEN');
    const user = await identity.getUser(auth.userId);
    const { rows } = await app.platform.db.query<{ id: string; name: string; role: string }>(
      'SELECT w.id, w.name, m.role FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = $1 ORDER BY w.name',
      [auth.userId],
    );
    return { user, workspaces: rows };
  });

  app.get('/auth/sessions', { onRequest: requireUser, schema: { tags: ['auth'], summary: 'My active sessions' } }, async (request) => {
    const auth = request.auth!;
    if (auth.kind !== 'user') throw new SiqError('SIQ_FORBIDDEN');
    return { sessions: (await identity.listSessions(auth.userId)).map((s) => ({ ...s, current: s.id === auth.sessionId })) };
  });

  app.delete<{ Params: { sessionId: string } }>(
    '/auth/sessions/:sessionId',
    { config: { audit: { action: 'auth.session_revoke', resource: 'session' } }, onRequest: requireUser, schema: { tags: ['auth'], summary: 'Revoke one of my sessions' } },
    async (request, reply) => {
      const auth = request.auth!;
      if (auth.kind !== 'user') throw new SiqError('SIQ_FORBIDDEN');
      const ok = /^[0-9a-f-]{36}$/i.test(request.params.sessionId) && (await identity.revokeOwnSession(auth.userId, request.params.sessionId));
      if (!ok) throw new SiqError('SIQ_NOT_FOUND', 'No active session with that id.');
      request.audit = { resourceId: request.params.sessionId };
      return reply.status(204).send();
    },
  );
}
