import { createHash } from 'node:crypto';
import type { Platform } from '../../platform/index.js';
import type { IngestPipeline } from '../ingest/pipeline.js';
import { SECURITY_EVENTS_CHANNEL, type SecurityEvent } from '../security-events/service.js';

/**
 * The platform's own security events (sign-in failures, lockouts, policy denials, role changes…)
 * become events of the workspaces they concern, stored and searchable like any other event
 * (`event.source: sentineliq`) and checked by the same rules — the built-in thresholds
 * `platform-account-lockout` and `platform-policy-denials` among them.
 *
 * An event with no workspace but a user (a locked account) goes to every workspace the user is a
 * member of. Every process hears every security event on the cache channel; a claim in the
 * cache lets exactly one of them store it. API-key use is not fed: it happens on every request.
 */
const SKIPPED = new Set(['apikey.used']);

type Published = SecurityEvent & { timestamp: string; severity: string };

export function toEventDoc(e: Published): Record<string, unknown> {
  return {
    '@timestamp': e.timestamp,
    'event.kind': 'event',
    'event.category': e.type.startsWith('auth.') ? 'authentication' : e.type.startsWith('policy.') ? 'iam' : 'configuration',
    'event.action': e.type,
    'event.outcome': e.type === 'auth.sign_in' ? 'success' : e.type.endsWith('_failed') || e.type === 'policy.denied' || e.type === 'auth.account_locked' ? 'failure' : 'success',
    'event.module': 'sentineliq',
    'log.level': e.severity === 'info' ? 'info' : e.severity === 'high' ? 'error' : 'warning',
    message: `SentinelIQ security event ${e.type}`,
    ...(e.userId ? { 'user.id': e.userId } : e.apiKeyId ? { 'user.id': `apikey:${e.apiKeyId}` } : {}),
    ...(e.apiKeyId ? { 'sentineliq.api_key_id': e.apiKeyId } : {}),
    ...(e.ip ? { 'source.ip': e.ip } : {}),
    ...Object.fromEntries(Object.entries(e.data ?? {}).map(([k, v]) => [`sentineliq.${k}`, v])),
  };
}

export async function startPlatformEventFeed(platform: Platform, ingest: IngestPipeline): Promise<() => Promise<void>> {
  const handle = async (message: string) => {
    let event: Published;
    try {
      event = JSON.parse(message) as Published;
    } catch {
      return;
    }
    if (SKIPPED.has(event.type)) return;
    const claim = `detect:secevt:${createHash('sha256').update(message).digest('hex')}`;
    if (!(await platform.cache.setIfAbsent(claim, '1', { ttlMs: 600_000 }))) return;
    let workspaces: string[] = [];
    if (event.workspaceId) workspaces = [event.workspaceId];
    else if (event.userId) {
      workspaces = (await platform.db.query<{ workspace_id: string }>('SELECT workspace_id FROM workspace_members WHERE user_id = $1', [event.userId])).rows.map((r) => r.workspace_id);
    }
    const doc = toEventDoc(event);
    for (const ws of workspaces) await ingest.ingest(ws, 'sentineliq', [{ value: doc }]);
  };
  return platform.cache.subscribe(SECURITY_EVENTS_CHANNEL, (message) => {
    handle(message).catch((err: unknown) => platform.logger.warn({ component: 'detect', err }, 'a platform security event could not be stored as an event'));
  });
}
