import { randomBytes } from 'node:crypto';
import { SiqError } from '../../errors.js';
import type { ApiKeyScope } from '../../http/auth.js';
import type { Platform } from '../../platform/index.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import { hashToken, randomToken } from '../identity/secrets.js';
import type { Role } from '../policy/engine.js';
import { emitSecurityEvent } from '../security-events/service.js';

export interface WorkspaceView {
  id: string;
  name: string;
  createdAt: string;
  updatedAt: string;
}

interface WorkspaceRow {
  id: string;
  name: string;
  created_at: Date;
  updated_at: Date;
}

const present = (r: WorkspaceRow): WorkspaceView => ({ id: r.id, name: r.name, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString() });

export const INVITATION_TTL_DAYS = 7;

/**
 * Workspaces, members, invitations and API keys. Reads and writes of one workspace run inside
 * `withWorkspace`, so row-level security backs up every explicit `workspace_id` filter.
 */
export class WorkspaceService {
  constructor(private readonly platform: Platform) {}

  async create(userId: string, name: string): Promise<WorkspaceView> {
    return this.platform.db.transaction(async (tx) => {
      const { rows } = await tx.query<WorkspaceRow>('INSERT INTO workspaces (name, created_by) VALUES ($1, $2) RETURNING *', [name, userId]);
      await tx.query("INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'owner')", [rows[0]!.id, userId]);
      return present(rows[0]!);
    });
  }

  async listForUser(userId: string): Promise<Array<WorkspaceView & { role: Role }>> {
    const { rows } = await this.platform.db.query<WorkspaceRow & { role: Role }>(
      'SELECT w.*, m.role FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id WHERE m.user_id = $1 ORDER BY w.name',
      [userId],
    );
    return rows.map((r) => ({ ...present(r), role: r.role }));
  }

  async get(workspaceId: string): Promise<WorkspaceView> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<WorkspaceRow>('SELECT * FROM workspaces WHERE id = $1', [workspaceId]);
      if (!rows[0]) throw new SiqError('SIQ_NOT_FOUND');
      return present(rows[0]);
    });
  }

  async rename(workspaceId: string, name: string): Promise<WorkspaceView> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<WorkspaceRow>('UPDATE workspaces SET name = $2, updated_at = now() WHERE id = $1 RETURNING *', [workspaceId, name]);
      if (!rows[0]) throw new SiqError('SIQ_NOT_FOUND');
      return present(rows[0]);
    });
  }

  async delete(workspaceId: string): Promise<void> {
    await withWorkspace(this.platform.db, workspaceId, (tx) => tx.query('DELETE FROM workspaces WHERE id = $1', [workspaceId]));
  }

  async members(workspaceId: string) {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<{ user_id: string; email: string; display_name: string; role: Role; created_at: Date }>(
        'SELECT m.user_id, u.email, u.display_name, m.role, m.created_at FROM workspace_members m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 ORDER BY u.email',
        [workspaceId],
      );
      return rows.map((r) => ({ userId: r.user_id, email: r.email, displayName: r.display_name, role: r.role, joinedAt: r.created_at.toISOString() }));
    });
  }

  /** Changes a member's role; the last owner cannot stop being one. */
  async changeRole(workspaceId: string, userId: string, role: Role, actor: { userId?: string; ip?: string }): Promise<void> {
    await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 7))', [`owners:${workspaceId}`]);
      const current = await tx.query<{ role: Role }>('SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2', [workspaceId, userId]);
      if (!current.rows[0]) throw new SiqError('SIQ_NOT_FOUND', 'No such member.');
      if (current.rows[0].role === 'owner' && role !== 'owner') await this.assertAnotherOwner(tx, workspaceId, userId);
      await tx.query('UPDATE workspace_members SET role = $3 WHERE workspace_id = $1 AND user_id = $2', [workspaceId, userId, role]);
    });
    await emitSecurityEvent(this.platform, { type: 'member.role_changed', severity: 'medium', workspaceId, userId: actor.userId, ip: actor.ip, data: { member: userId, role } });
  }

  async removeMember(workspaceId: string, userId: string, actor: { userId?: string; ip?: string }): Promise<void> {
    await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 7))', [`owners:${workspaceId}`]);
      const current = await tx.query<{ role: Role }>('SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2', [workspaceId, userId]);
      if (!current.rows[0]) throw new SiqError('SIQ_NOT_FOUND', 'No such member.');
      if (current.rows[0].role === 'owner') await this.assertAnotherOwner(tx, workspaceId, userId);
      await tx.query('DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2', [workspaceId, userId]);
    });
    await emitSecurityEvent(this.platform, { type: 'member.removed', severity: 'medium', workspaceId, userId: actor.userId, ip: actor.ip, data: { member: userId } });
  }

  private async assertAnotherOwner(tx: { query: Platform['db']['query'] }, workspaceId: string, userId: string): Promise<void> {
    const { rows } = await tx.query<{ n: number }>("SELECT count(*) AS n FROM workspace_members WHERE workspace_id = $1 AND role = 'owner' AND user_id <> $2", [workspaceId, userId]);
    if (!rows[0]?.n) throw new SiqError('SIQ_LAST_OWNER');
  }

  /** Creates a single-use invitation; the token is returned once (for the email) and stored hashed. */
  async invite(workspaceId: string, email: string, role: Exclude<Role, 'owner'>, invitedBy: string | undefined) {
    const token = randomToken('siqinv_');
    const row = await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<{ id: string; expires_at: Date }>(
        "INSERT INTO invitations (workspace_id, email, role, token_hash, invited_by, expires_at) VALUES ($1, $2, $3, $4, $5, now() + ($6 || ' days')::interval) RETURNING id, expires_at",
        [workspaceId, email.toLowerCase(), role, hashToken(token), invitedBy ?? null, String(INVITATION_TTL_DAYS)],
      );
      return rows[0]!;
    });
    return { id: row.id, email: email.toLowerCase(), role, expiresAt: row.expires_at.toISOString(), token };
  }

  async invitations(workspaceId: string) {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<{ id: string; email: string; role: Role; expires_at: Date; accepted_at: Date | null; revoked_at: Date | null; created_at: Date }>(
        'SELECT id, email, role, expires_at, accepted_at, revoked_at, created_at FROM invitations WHERE workspace_id = $1 ORDER BY created_at DESC',
        [workspaceId],
      );
      return rows.map((r) => ({
        id: r.id, email: r.email, role: r.role, createdAt: r.created_at.toISOString(), expiresAt: r.expires_at.toISOString(),
        status: r.accepted_at ? 'accepted' : r.revoked_at ? 'revoked' : r.expires_at.getTime() < Date.now() ? 'expired' : 'pending',
      }));
    });
  }

  async revokeInvitation(workspaceId: string, invitationId: string): Promise<void> {
    const result = await withWorkspace(this.platform.db, workspaceId, (tx) =>
      tx.query('UPDATE invitations SET revoked_at = now() WHERE id = $1 AND workspace_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL', [invitationId, workspaceId]));
    if (result.rowCount === 0) throw new SiqError('SIQ_NOT_FOUND', 'No pending invitation with that id.');
  }

  /**
   * Accepts an invitation: claims it once (atomically), then adds the member. The accepting
   * account must have the invited email address.
   */
  async acceptInvitation(token: string, userId: string, userEmail: string): Promise<{ workspaceId: string; role: Role }> {
    return this.platform.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ workspace_id: string; role: Role; email: string }>(
        'UPDATE invitations SET accepted_at = now() WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now() RETURNING workspace_id, role, email',
        [hashToken(token)],
      );
      const inv = rows[0];
      if (!inv || inv.email !== userEmail.toLowerCase()) throw new SiqError('SIQ_INVITATION_INVALID');
      await tx.query('INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT (workspace_id, user_id) DO NOTHING', [inv.workspace_id, userId, inv.role]);
      return { workspaceId: inv.workspace_id, role: inv.role };
    });
  }

  async invitationEmail(token: string): Promise<string | null> {
    const { rows } = await this.platform.db.query<{ email: string }>('SELECT email FROM invitations WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()', [hashToken(token)]);
    return rows[0]?.email ?? null;
  }

  /** Creates an API key; the full key is returned once and only its hash is kept. */
  async createApiKey(workspaceId: string, input: { name: string; scopes: ApiKeyScope[]; expiresAt?: string }, createdBy: string | undefined) {
    const prefix = randomBytes(6).toString('base64url').replace(/[-_]/g, 'x').slice(0, 8);
    const key = `siq_${prefix}_${randomBytes(32).toString('base64url')}`;
    const row = await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<{ id: string; created_at: Date }>(
        'INSERT INTO api_keys (workspace_id, name, prefix, key_hash, scopes, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, created_at',
        [workspaceId, input.name, prefix, hashToken(key), input.scopes, createdBy ?? null, input.expiresAt ?? null],
      );
      return rows[0]!;
    });
    await emitSecurityEvent(this.platform, { type: 'apikey.created', workspaceId, userId: createdBy, data: { apiKeyId: row.id, scopes: input.scopes } });
    return { id: row.id, name: input.name, prefix, scopes: input.scopes, expiresAt: input.expiresAt ?? null, createdAt: row.created_at.toISOString(), key };
  }

  async apiKeys(workspaceId: string) {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<{ id: string; name: string; prefix: string; scopes: ApiKeyScope[]; created_at: Date; expires_at: Date | null; last_used_at: Date | null; revoked_at: Date | null }>(
        'SELECT id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC',
        [workspaceId],
      );
      return rows.map((r) => ({
        id: r.id, name: r.name, prefix: `siq_${r.prefix}_…`, scopes: r.scopes, createdAt: r.created_at.toISOString(),
        expiresAt: r.expires_at?.toISOString() ?? null, lastUsedAt: r.last_used_at?.toISOString() ?? null, revokedAt: r.revoked_at?.toISOString() ?? null,
      }));
    });
  }

  async revokeApiKey(workspaceId: string, keyId: string, actor: string | undefined): Promise<void> {
    const result = await withWorkspace(this.platform.db, workspaceId, (tx) =>
      tx.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND workspace_id = $2 AND revoked_at IS NULL', [keyId, workspaceId]));
    if (result.rowCount === 0) throw new SiqError('SIQ_NOT_FOUND', 'No active API key with that id.');
    await emitSecurityEvent(this.platform, { type: 'apikey.revoked', workspaceId, userId: actor, data: { apiKeyId: keyId } });
  }
}
