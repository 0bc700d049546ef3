import type { Cache } from '../../platform/cache/types.js';
import type { Database } from '../../platform/db/types.js';
import type { Logger } from '../../platform/log/logger.js';

export type SecurityEventType =
  | 'auth.sign_in_failed'
  | 'auth.account_locked'
  | 'auth.refresh_token_reused'
  | 'auth.sign_in'
  | 'member.role_changed'
  | 'member.removed'
  | 'policy.changed'
  | 'policy.denied'
  | 'apikey.used'
  | 'apikey.created'
  | 'apikey.revoked';

export interface SecurityEvent {
  type: SecurityEventType;
  severity?: 'info' | 'low' | 'medium' | 'high';
  workspaceId?: string | null;
  userId?: string | null;
  apiKeyId?: string | null;
  ip?: string | null;
  data?: Record<string, unknown>;
}

export const SECURITY_EVENTS_CHANNEL = 'security-events';

/**
 * Records a security-relevant event three ways: a row in `security_events` (durable, for the
 * detection engine and retro-hunts), a structured log line, and a message on the cache's
 * `security-events` channel (live consumers in any process). Never throws: losing the event is
 * logged, but it must not fail the request that caused it.
 */
export async function emitSecurityEvent(deps: { db: Database; cache: Cache; logger: Logger }, event: SecurityEvent): Promise<void> {
  const record = { ...event, severity: event.severity ?? 'info', timestamp: new Date().toISOString() };
  deps.logger.info({ component: 'security', securityEvent: record, workspaceId: event.workspaceId, userId: event.userId }, `security event ${event.type}`);
  try {
    await deps.db.query('INSERT INTO security_events (workspace_id, type, severity, user_id, api_key_id, ip, data) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      event.workspaceId ?? null, event.type, record.severity, event.userId ?? null, event.apiKeyId ?? null, event.ip ?? null, JSON.stringify(event.data ?? {}),
    ]);
    await deps.cache.publish(SECURITY_EVENTS_CHANNEL, JSON.stringify(record));
  } catch (err) {
    deps.logger.error({ component: 'security', err }, 'could not record a security event');
  }
}
