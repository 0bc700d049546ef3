import type { Queryable } from '../../platform/db/types.js';
import type { AlertNotice } from '../alerts/types.js';
import type { ChannelType } from './channels.js';

/**
 * The durable outbox: rows are written in the transaction that creates the alert (so an alert
 * and its notifications commit or roll back together) and drained by the delivery worker.
 *
 * Claiming is one UPDATE over a `FOR UPDATE SKIP LOCKED` sub-select: concurrent workers (in one
 * process or many) never claim the same row, and a claimed row carries a lease (`locked_until`)
 * and a `claim_token`. Only the holder of the token may record the outcome; a row whose worker
 * died is claimed again once its lease expired (at-least-once in that case: receivers dedupe on
 * the delivery id, which is the row id and never changes).
 */

export const BASE_RETRY_MS = 30_000;
export const MAX_RETRY_MS = 3_600_000;

/**
 * Delay before the next attempt after `attempts` failed attempts: 30 s × 2^(attempts−1), capped
 * at one hour, with ±20 % jitter so a receiver that comes back is not hit by every retry at once.
 */
export function retryDelayMs(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(BASE_RETRY_MS * 2 ** Math.max(0, attempts - 1), MAX_RETRY_MS);
  return Math.min(Math.round(base * (0.8 + 0.4 * random())), MAX_RETRY_MS);
}

export interface ClaimedRow {
  id: string;
  workspace_id: string;
  channel_id: string;
  alert_id: string | null;
  kind: 'alert' | 'test';
  payload: AlertNotice;
  attempts: number;
  max_attempts: number;
  type: ChannelType;
  enabled: boolean;
  settings: Record<string, unknown>;
  secret_ciphertext: string | null;
  secret_key_id: string | null;
}

/** Inserts one row per channel; an (alert, channel) pair already present is skipped. Returns the rows inserted. */
export async function insertAlertRows(tx: Queryable, alert: AlertNotice, channelIds: string[], maxAttempts: number, now: Date): Promise<number> {
  if (channelIds.length === 0) return 0;
  const result = await tx.query(
    `INSERT INTO notification_outbox (workspace_id, channel_id, alert_id, kind, payload, max_attempts, next_attempt_at, created_at)
     SELECT $1, channel_id, $2, 'alert', $3::jsonb, $4, $5, $5 FROM unnest($6::uuid[]) AS channel_id
     ON CONFLICT DO NOTHING`,
    [alert.workspaceId, alert.id, JSON.stringify(alert), maxAttempts, now, channelIds],
  );
  return result.rowCount;
}

export async function insertTestRow(tx: Queryable, workspaceId: string, channelId: string, notice: AlertNotice, maxAttempts: number, now: Date): Promise<string> {
  const { rows } = await tx.query<{ id: string }>(
    `INSERT INTO notification_outbox (id, workspace_id, channel_id, alert_id, kind, payload, max_attempts, next_attempt_at, created_at)
     VALUES ($1, $2, $3, NULL, 'test', $4::jsonb, $5, $6, $6) RETURNING id`,
    [notice.id, workspaceId, channelId, JSON.stringify(notice), maxAttempts, now],
  );
  return rows[0]!.id;
}

/** Claims up to `limit` due rows (pending and due, or sending with an expired lease) for this worker. */
export async function claimDue(db: Queryable, now: Date, claimToken: string, leaseUntil: Date, limit: number): Promise<ClaimedRow[]> {
  const { rows } = await db.query<ClaimedRow>(
    `UPDATE notification_outbox o
        SET status = 'sending', claim_token = $2, locked_until = $3, attempts = o.attempts + 1, last_attempt_at = $1
       FROM notification_channels c
      WHERE c.id = o.channel_id
        AND o.id IN (
          SELECT id FROM notification_outbox
           WHERE (status = 'pending' AND next_attempt_at <= $1) OR (status = 'sending' AND locked_until <= $1)
           ORDER BY next_attempt_at, created_at
           LIMIT $4
           FOR UPDATE SKIP LOCKED)
      RETURNING o.id, o.workspace_id, o.channel_id, o.alert_id, o.kind, o.payload, o.attempts, o.max_attempts,
                c.type, c.enabled, c.settings, c.secret_ciphertext, c.secret_key_id`,
    [now, claimToken, leaseUntil, limit],
  );
  return rows;
}

/** Records a success; false when the claim was lost (the lease expired and another worker took the row). */
export async function markSent(db: Queryable, id: string, claimToken: string, at: Date, statusCode: number | undefined): Promise<boolean> {
  const result = await db.query(
    `UPDATE notification_outbox SET status = 'sent', sent_at = $3, last_error = NULL, last_status_code = $4, claim_token = NULL, locked_until = NULL
      WHERE id = $1 AND claim_token = $2`,
    [id, claimToken, at, statusCode ?? null],
  );
  return result.rowCount === 1;
}

/** Records a failed attempt: `retryAt` schedules the next one, null gives up (status failed). */
export async function markFailed(db: Queryable, id: string, claimToken: string, error: string, statusCode: number | undefined, retryAt: Date | null): Promise<boolean> {
  const result = await db.query(
    `UPDATE notification_outbox
        SET status = CASE WHEN $5::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
            next_attempt_at = coalesce($5::timestamptz, next_attempt_at),
            last_error = $3, last_status_code = $4, claim_token = NULL, locked_until = NULL
      WHERE id = $1 AND claim_token = $2`,
    [id, claimToken, error, statusCode ?? null, retryAt],
  );
  return result.rowCount === 1;
}
