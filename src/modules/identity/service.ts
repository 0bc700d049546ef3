import { randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { SiqError } from '../../errors.js';
import { deriveKey, type Platform } from '../../platform/index.js';
import { emitSecurityEvent } from '../security-events/service.js';
import { hashPassword, hashToken, randomToken, verifyPassword } from './secrets.js';

export interface UserView {
  id: string;
  email: string;
  displayName: string;
  isPlatformAdmin: boolean;
  createdAt: string;
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
  sessionId: string;
  user: UserView;
}

export interface AccessClaims {
  userId: string;
  sessionId: string;
}

interface UserRow {
  id: string;
  email: string;
  display_name: string;
  password_hash: string | null;
  is_platform_admin: boolean;
  failed_sign_ins: number;
  locked_until: Date | null;
  created_at: Date;
}

/** After this many consecutive failures the account locks for LOCK_MS. */
export const LOCK_AFTER_FAILURES = 5;
export const LOCK_MS = 15 * 60_000;
/** From this many failures on, each further attempt must wait 2^(n-SLOW_AFTER) seconds. */
export const SLOW_AFTER_FAILURES = 3;

export function presentUser(row: Pick<UserRow, 'id' | 'email' | 'display_name' | 'is_platform_admin' | 'created_at'>): UserView {
  return { id: row.id, email: row.email, displayName: row.display_name, isPlatformAdmin: row.is_platform_admin, createdAt: row.created_at.toISOString() };
}

interface RequestMeta {
  ip?: string;
  userAgent?: string;
}

/**
 * Accounts, sign-in and sessions. Access tokens are short-lived JWTs (HS256, key derived from
 * JWT_SECRET); refresh tokens are opaque, stored hashed, and rotate on every use. A session is a
 * token family: reuse of an already-rotated refresh token revokes the whole family.
 */
export class IdentityService {
  private readonly accessKey: Uint8Array;

  constructor(private readonly platform: Platform) {
    this.accessKey = new TextEncoder().encode(deriveKey(platform.config, 'access-tokens'));
  }

  private get db() {
    return this.platform.db;
  }

  private security(event: Parameters<typeof emitSecurityEvent>[1]) {
    return emitSecurityEvent(this.platform, event);
  }

  async findUserByEmail(email: string): Promise<UserRow | null> {
    const { rows } = await this.db.query<UserRow>('SELECT * FROM users WHERE lower(email) = lower($1)', [email]);
    return rows[0] ?? null;
  }

  async getUser(id: string): Promise<UserView | null> {
    const { rows } = await this.db.query<UserRow>('SELECT * FROM users WHERE id = $1', [id]);
    return rows[0] ? presentUser(rows[0]) : null;
  }

  /**
   * First run: every ADMIN_EMAILS address without a password gets a platform-admin account and a
   * one-time setup code (24 h) printed to the log. No default password exists anywhere.
   */
  async bootstrapAdmins(): Promise<Array<{ email: string; setupCode: string }>> {
    const issued: Array<{ email: string; setupCode: string }> = [];
    for (const email of this.platform.config.security.adminEmails) {
      const { rows } = await this.db.query<UserRow>(
        `INSERT INTO users (email, is_platform_admin) VALUES ($1, true)
         ON CONFLICT ((lower(email))) DO UPDATE SET is_platform_admin = true RETURNING *`,
        [email],
      );
      if (rows[0]!.password_hash) continue;
      const setupCode = randomToken('siqsetup_');
      await this.db.query("INSERT INTO setup_tokens (token_hash, email, expires_at) VALUES ($1, $2, now() + interval '24 hours')", [hashToken(setupCode), email]);
      issued.push({ email, setupCode });
      this.platform.logger.warn(
        { component: 'identity' },
        `first-run setup code for ${email}: ${setupCode} — valid 24 hours, once. Set the password with POST /api/v1/auth/setup {"email","setupCode","password"}.`,
      );
    }
    return issued;
  }

  async completeSetup(email: string, setupCode: string, password: string, displayName: string | undefined, meta: RequestMeta): Promise<TokenPair> {
    // The password is checked first, so a weak one does not spend the one-time code.
    const hash = await hashPassword(password, email);
    const used = await this.db.query<{ email: string }>(
      'UPDATE setup_tokens SET used_at = now() WHERE token_hash = $1 AND lower(email) = lower($2) AND used_at IS NULL AND expires_at > now() RETURNING email',
      [hashToken(setupCode), email],
    );
    if (used.rowCount === 0) throw new SiqError('SIQ_SETUP_TOKEN_INVALID');
    const { rows } = await this.db.query<UserRow>(
      "UPDATE users SET password_hash = $2, display_name = coalesce($3, display_name), updated_at = now() WHERE lower(email) = lower($1) RETURNING *",
      [email, hash, displayName ?? null],
    );
    if (!rows[0]) throw new SiqError('SIQ_SETUP_TOKEN_INVALID');
    return this.startSession(rows[0], meta);
  }

  /** Creates an account (used by invitation acceptance); the password must meet the policy. */
  async createUser(email: string, password: string, displayName?: string): Promise<UserView> {
    const hash = await hashPassword(password, email);
    const { rows } = await this.db.query<UserRow>('INSERT INTO users (email, password_hash, display_name) VALUES ($1, $2, $3) RETURNING *', [email, hash, displayName ?? '']);
    return presentUser(rows[0]!);
  }

  async signIn(email: string, password: string, meta: RequestMeta): Promise<TokenPair> {
    const user = await this.findUserByEmail(email);
    const now = Date.now();
    if (user?.locked_until && user.locked_until.getTime() > now) {
      throw new SiqError('SIQ_ACCOUNT_LOCKED', undefined, { details: { retryAfterSeconds: Math.ceil((user.locked_until.getTime() - now) / 1000) } });
    }
    if (user && user.failed_sign_ins >= SLOW_AFTER_FAILURES) {
      const waitUntil = Number(await this.platform.cache.get(`signin:wait:${user.id}`));
      if (waitUntil > now) {
        throw new SiqError('SIQ_RATE_LIMITED', 'Too many failed sign-ins for this account: wait before trying again.', { details: { retryAfterSeconds: Math.ceil((waitUntil - now) / 1000) } });
      }
    }
    const ok = await verifyPassword(user?.password_hash, password);
    if (!user || !ok) {
      if (user) await this.recordFailure(user, meta);
      else await this.security({ type: 'auth.sign_in_failed', severity: 'low', ip: meta.ip, data: { email, reason: 'unknown account' } });
      throw new SiqError('SIQ_INVALID_CREDENTIALS');
    }
    await this.db.query('UPDATE users SET failed_sign_ins = 0, locked_until = NULL WHERE id = $1', [user.id]);
    await this.security({ type: 'auth.sign_in', userId: user.id, ip: meta.ip });
    return this.startSession(user, meta);
  }

  private async recordFailure(user: UserRow, meta: RequestMeta): Promise<void> {
    const { rows } = await this.db.query<{ failed_sign_ins: number }>('UPDATE users SET failed_sign_ins = failed_sign_ins + 1 WHERE id = $1 RETURNING failed_sign_ins', [user.id]);
    const failures = rows[0]!.failed_sign_ins;
    await this.security({ type: 'auth.sign_in_failed', severity: 'low', userId: user.id, ip: meta.ip, data: { failures } });
    if (failures >= LOCK_AFTER_FAILURES) {
      await this.db.query("UPDATE users SET locked_until = now() + ($2 || ' milliseconds')::interval, failed_sign_ins = 0 WHERE id = $1", [user.id, String(LOCK_MS)]);
      await this.security({ type: 'auth.account_locked', severity: 'medium', userId: user.id, ip: meta.ip, data: { failures, lockedForSeconds: LOCK_MS / 1000 } });
    } else if (failures >= SLOW_AFTER_FAILURES) {
      const delayMs = 1000 * 2 ** (failures - SLOW_AFTER_FAILURES);
      await this.platform.cache.set(`signin:wait:${user.id}`, String(Date.now() + delayMs), { ttlMs: delayMs });
    }
  }

  private async startSession(user: UserRow, meta: RequestMeta, familyId: string = randomUUID()): Promise<TokenPair> {
    const refreshToken = randomToken('siqr_');
    const days = this.platform.config.security.refreshTokenTtlDays;
    await this.db.query(
      "INSERT INTO sessions (family_id, user_id, token_hash, expires_at, ip, user_agent) VALUES ($1, $2, $3, now() + ($4 || ' days')::interval, $5, $6)",
      [familyId, user.id, hashToken(refreshToken), String(days), meta.ip ?? null, meta.userAgent?.slice(0, 512) ?? null],
    );
    const ttl = this.platform.config.security.accessTokenTtlSeconds;
    const accessToken = await new SignJWT({ sid: familyId, typ: 'access' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .setIssuedAt()
      .setIssuer('sentineliq')
      .setExpirationTime(`${ttl}s`)
      .setJti(randomUUID())
      .sign(this.accessKey);
    return { accessToken, refreshToken, tokenType: 'Bearer', expiresIn: ttl, sessionId: familyId, user: presentUser(user) };
  }

  /** Checks an access token; a signed-out session's tokens stop working at once. */
  async verifyAccessToken(token: string): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(token, this.accessKey, { issuer: 'sentineliq', algorithms: ['HS256'] });
      if (payload.typ !== 'access' || typeof payload.sub !== 'string' || typeof payload.sid !== 'string') throw new Error('wrong token type');
      if (await this.platform.cache.get(`session:revoked:${payload.sid}`)) throw new Error('session revoked');
      return { userId: payload.sub, sessionId: payload.sid };
    } catch {
      throw new SiqError('SIQ_TOKEN_INVALID');
    }
  }

  /** Rotates a refresh token. Presenting one that was already used revokes its whole family. */
  async refresh(refreshToken: string, meta: RequestMeta): Promise<TokenPair> {
    const hash = hashToken(refreshToken);
    const claimed = await this.db.query<{ id: string; family_id: string; user_id: string }>(
      'UPDATE sessions SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() RETURNING id, family_id, user_id',
      [hash],
    );
    const row = claimed.rows[0];
    if (!row) {
      const known = await this.db.query<{ family_id: string; user_id: string; used_at: Date | null; revoked_at: Date | null }>('SELECT family_id, user_id, used_at, revoked_at FROM sessions WHERE token_hash = $1', [hash]);
      const prior = known.rows[0];
      if (prior?.used_at && !prior.revoked_at) {
        await this.revokeFamily(prior.family_id, 'refresh token reused');
        await this.security({ type: 'auth.refresh_token_reused', severity: 'high', userId: prior.user_id, ip: meta.ip, data: { sessionId: prior.family_id } });
        throw new SiqError('SIQ_TOKEN_REUSED');
      }
      throw new SiqError('SIQ_TOKEN_INVALID');
    }
    const { rows } = await this.db.query<UserRow>('SELECT * FROM users WHERE id = $1', [row.user_id]);
    if (!rows[0]) throw new SiqError('SIQ_TOKEN_INVALID');
    return this.startSession(rows[0], meta, row.family_id);
  }

  async revokeFamily(familyId: string, reason: string): Promise<void> {
    await this.db.query('UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE family_id = $1 AND revoked_at IS NULL', [familyId, reason]);
    await this.platform.cache.set(`session:revoked:${familyId}`, '1', { ttlMs: this.platform.config.security.accessTokenTtlSeconds * 1000 });
  }

  async listSessions(userId: string): Promise<Array<{ id: string; createdAt: string; lastUsedAt: string; expiresAt: string; ip: string | null; userAgent: string | null }>> {
    const { rows } = await this.db.query<{ family_id: string; started: Date; last: Date; expires_at: Date; ip: string | null; user_agent: string | null }>(
      `SELECT family_id, min(created_at) AS started, max(created_at) AS last, max(expires_at) AS expires_at,
              (array_agg(ip ORDER BY created_at DESC))[1] AS ip, (array_agg(user_agent ORDER BY created_at DESC))[1] AS user_agent
       FROM sessions WHERE user_id = $1 GROUP BY family_id
       HAVING bool_and(revoked_at IS NULL) AND max(expires_at) > now() ORDER BY last DESC`,
      [userId],
    );
    return rows.map((r) => ({ id: r.family_id, createdAt: r.started.toISOString(), lastUsedAt: r.last.toISOString(), expiresAt: r.expires_at.toISOString(), ip: r.ip, userAgent: r.user_agent }));
  }

  /** Revokes one of the user's own sessions; false when it is not theirs or not active. */
  async revokeOwnSession(userId: string, familyId: string): Promise<boolean> {
    const { rows } = await this.db.query<{ n: number }>('SELECT count(*) AS n FROM sessions WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL', [familyId, userId]);
    if (!rows[0]?.n) return false;
    await this.revokeFamily(familyId, 'signed out');
    return true;
  }
}
