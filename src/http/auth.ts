import type { FastifyReply, FastifyRequest } from 'fastify';
import { SiqError } from '../errors.js';
import { hashToken, sameHash } from '../modules/identity/secrets.js';
import type { Role } from '../modules/policy/engine.js';
import { emitSecurityEvent } from '../modules/security-events/service.js';
import { enforce } from './rate-limit.js';

export type ApiKeyScope = 'read' | 'ingest' | 'admin';
export const API_KEY_SCOPES: readonly ApiKeyScope[] = ['read', 'ingest', 'admin'];

export type AuthContext =
  | { kind: 'user'; userId: string; sessionId: string; email: string; isPlatformAdmin: boolean }
  | { kind: 'apikey'; apiKeyId: string; workspaceId: string; scopes: ApiKeyScope[]; name: string };

export interface WorkspaceAccess {
  id: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth?: AuthContext;
    workspace?: WorkspaceAccess;
    /** Set by handlers for the audit entry of a state-changing request. */
    audit?: { resourceId?: string | null; description?: string; metadata?: Record<string, unknown>; workspaceId?: string };
  }
  interface FastifyContextConfig {
    /**
     * Every state-changing route names the audit action it records (checked by a test), or
     * `false` where an entry per request makes no sense (event ingestion, read-only POSTs).
     */
    audit?: { action: string; resource: string } | false;
  }
}

/** API keys look like `siq_<8-char prefix>_<secret>`; the prefix is shown in listings, the rest never again. */
export const API_KEY_PATTERN = /^siq_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{32,})$/;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

function credentialFrom(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string' && /^Bearer\s+/i.test(header)) return header.replace(/^Bearer\s+/i, '').trim();
  const apiKey = request.headers['x-api-key'];
  return typeof apiKey === 'string' ? apiKey.trim() : undefined;
}

async function authenticateApiKey(request: FastifyRequest, reply: FastifyReply, key: string): Promise<AuthContext> {
  const match = API_KEY_PATTERN.exec(key);
  if (!match) throw new SiqError('SIQ_UNAUTHENTICATED', 'The API key is malformed.');
  const { db } = request.server.platform;
  const { rows } = await db.query<{ id: string; workspace_id: string; key_hash: string; scopes: ApiKeyScope[]; name: string; expires_at: Date | null; revoked_at: Date | null; last_used_at: Date | null }>(
    'SELECT id, workspace_id, key_hash, scopes, name, expires_at, revoked_at, last_used_at FROM api_keys WHERE prefix = $1',
    [match[1]],
  );
  const row = rows[0];
  if (!row || !sameHash(row.key_hash, hashToken(key)) || row.revoked_at || (row.expires_at && row.expires_at.getTime() < Date.now())) {
    throw new SiqError('SIQ_UNAUTHENTICATED', 'The API key is unknown, revoked or expired.');
  }
  await enforce(request, reply, 'api-key', row.id);
  // last_used_at at most once a minute per key: no write per request on a busy shipper.
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > 60_000) {
    await db.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [row.id]);
    await emitSecurityEvent(request.server.platform, { type: 'apikey.used', workspaceId: row.workspace_id, apiKeyId: row.id, ip: request.ip, data: { name: row.name } });
  }
  return { kind: 'apikey', apiKeyId: row.id, workspaceId: row.workspace_id, scopes: row.scopes, name: row.name };
}

/** Route hook (onRequest, before the body is read or validated): a signed-in user or an API key; 401 otherwise. */
export async function authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const credential = credentialFrom(request);
  if (!credential) throw new SiqError('SIQ_UNAUTHENTICATED');
  if (credential.startsWith('siq_')) {
    request.auth = await authenticateApiKey(request, reply, credential);
    return;
  }
  const claims = await request.server.identity.verifyAccessToken(credential);
  const user = await request.server.identity.getUser(claims.userId);
  if (!user) throw new SiqError('SIQ_TOKEN_INVALID');
  request.auth = { kind: 'user', userId: user.id, sessionId: claims.sessionId, email: user.email, isPlatformAdmin: user.isPlatformAdmin };
}

/** Route hook: a signed-in user (API keys are refused). */
export async function requireUser(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  await authenticate(request, reply);
  if (request.auth?.kind !== 'user') throw new SiqError('SIQ_FORBIDDEN', 'This route needs a signed-in user, not an API key.');
}

/** The scope an API key needs for an action: reads need read, ingestion needs ingest, the rest admin. */
export function scopeFor(action: string): ApiKeyScope {
  if (action.endsWith(':read')) return 'read';
  if (action === 'events:ingest') return 'ingest';
  return 'admin';
}

const API_KEY_ROLE: Record<ApiKeyScope, Role> = { read: 'viewer', ingest: 'analyst', admin: 'admin' };

/**
 * Route hook factory (use as onRequest, so nothing is parsed or validated for outsiders) for workspace-scoped routes (`/workspaces/:workspaceId/…`): the caller must be
 * a member (or a key of that workspace), and the policy engine must allow `action` on the
 * resource. Non-members get 404 so workspace ids cannot be probed; members without the right
 * get 403.
 */
export function workspaceAccess(action: string, resourceType: string, resourceParam?: string) {
  return async function checkWorkspace(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    await authenticate(request, reply);
    const params = request.params as Record<string, string | undefined>;
    const workspaceId = params.workspaceId;
    const notFound = new SiqError('SIQ_NOT_FOUND', 'No such workspace, or you are not a member of it.');
    if (!isUuid(workspaceId)) throw notFound;
    const auth = request.auth!;
    let role: Role;
    if (auth.kind === 'apikey') {
      if (auth.workspaceId !== workspaceId) throw notFound;
      const needed = scopeFor(action);
      if (!auth.scopes.includes(needed) && !auth.scopes.includes('admin')) throw new SiqError('SIQ_API_KEY_SCOPE', `This route needs an API key with the "${needed}" scope.`);
      role = API_KEY_ROLE[auth.scopes.includes('admin') ? 'admin' : needed];
    } else {
      const { rows } = await request.server.platform.db.query<{ role: Role }>('SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2', [workspaceId, auth.userId]);
      if (!rows[0]) throw notFound;
      role = rows[0].role;
    }
    const resourceId = resourceParam ? params[resourceParam] : undefined;
    const path = `workspace/${workspaceId}/${resourceType}${resourceId ? `/${resourceId}` : ''}`;
    const subject = auth.kind === 'user' ? { userId: auth.userId, role } : { apiKeyId: auth.apiKeyId, role };
    const decision = await request.server.policy.decide(workspaceId, subject, action, { type: resourceType, path }, { ip: request.ip, time: new Date() });
    if (!decision.allowed) throw new SiqError('SIQ_FORBIDDEN', `Not allowed: ${decision.reason}.`);
    request.workspace = { id: workspaceId, role };
  };
}
