import { randomUUID } from 'node:crypto';
import { SiqError } from '../../errors.js';
import { isUuid } from '../../http/auth.js';
import type { Platform } from '../../platform/index.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import type { Queryable } from '../../platform/db/types.js';
import { schedule, type ScheduledJob } from '../../platform/jobs/scheduler.js';
import { redactString } from '../../platform/log/redact.js';
import { severityRank, type AlertNotice, type Severity } from '../alerts/types.js';
import {
  DeliveryFailure, resolveChannelConfig, send,
  type ChannelConfigInput, type ChannelSecrets, type ChannelSettings, type ChannelType, type Notice,
} from './channels.js';
import { claimDue, insertAlertRows, insertTestRow, markFailed, markSent, MAX_RETRY_MS, retryDelayMs, type ClaimedRow } from './outbox.js';
import { SecretBox, SecretBoxError } from './secret-box.js';

export interface NotifyOptions {
  /** Attempts per delivery before it is marked failed (default 10). */
  maxAttempts?: number;
  /** Per-request timeout for HTTP and SMTP (default 10 s). */
  timeoutMs?: number;
  /** Rows claimed per round of `deliverDue` (default 50). */
  batchSize?: number;
  /** Deliveries sent in parallel (default 8). */
  concurrency?: number;
  /** How long a claimed row stays reserved for its worker (default 5 min): after that another worker may retry it. */
  leaseMs?: number;
  /** Telegram Bot API base (default https://api.telegram.org); tests point it at a local receiver. */
  telegramApiBase?: string;
  /** The wall clock (signature timestamps, enqueue times); default `new Date()`. */
  clock?: () => Date;
  /** Jitter source for the retry schedule; default Math.random. */
  random?: () => number;
}

export interface ChannelFilters {
  minSeverity: Severity;
  ruleIds: string[];
  tags: string[];
}

export interface CreateChannelInput extends Partial<ChannelFilters> {
  name: string;
  type: ChannelType;
  enabled?: boolean;
  config: ChannelConfigInput;
}

export type UpdateChannelInput = Partial<Omit<CreateChannelInput, 'type'>>;

export interface DeliveryView {
  id: string;
  channelId: string;
  alertId: string | null;
  kind: 'alert' | 'test';
  status: 'pending' | 'sending' | 'sent' | 'failed';
  attempts: number;
  maxAttempts: number;
  nextAttemptAt: Date | null;
  lastAttemptAt: Date | null;
  lastError: string | null;
  lastStatusCode: number | null;
  sentAt: Date | null;
  createdAt: Date;
  alert: { severity: Severity; ruleTitle: string };
}

/** A channel as the API shows it: never a secret, only whether one is set and a hint. */
export interface ChannelView extends ChannelFilters {
  id: string;
  workspaceId: string;
  name: string;
  type: ChannelType;
  enabled: boolean;
  settings: ChannelSettings;
  secretSet: boolean;
  createdAt: Date;
  updatedAt: Date;
  lastDelivery: Pick<DeliveryView, 'id' | 'status' | 'attempts' | 'lastAttemptAt' | 'lastError' | 'sentAt'> | null;
}

interface ChannelRow {
  id: string;
  workspace_id: string;
  name: string;
  type: ChannelType;
  enabled: boolean;
  min_severity: Severity;
  rule_ids: string[];
  tags: string[];
  settings: ChannelSettings;
  secret_ciphertext: string | null;
  secret_key_id: string | null;
  created_at: Date;
  updated_at: Date;
  last_delivery: ChannelView['lastDelivery'];
}

const CHANNEL_SELECT = `
  SELECT c.id, c.workspace_id, c.name, c.type, c.enabled, c.min_severity, c.rule_ids, c.tags, c.settings,
         c.secret_ciphertext, c.secret_key_id, c.created_at, c.updated_at,
         (SELECT json_build_object('id', o.id, 'status', o.status, 'attempts', o.attempts, 'lastAttemptAt', o.last_attempt_at,
                                   'lastError', o.last_error, 'sentAt', o.sent_at)
            FROM notification_outbox o WHERE o.channel_id = c.id ORDER BY o.created_at DESC, o.id LIMIT 1) AS last_delivery
    FROM notification_channels c`;

function toView(row: ChannelRow): ChannelView {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    name: row.name,
    type: row.type,
    enabled: row.enabled,
    minSeverity: row.min_severity,
    ruleIds: row.rule_ids,
    tags: row.tags,
    settings: row.settings,
    secretSet: row.secret_ciphertext !== null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastDelivery: row.last_delivery ?? null,
  };
}

/** Whether a channel's filters select an alert: severity at least the minimum, rule in the list (if any), a tag in the list (if any). */
export function channelMatches(filters: ChannelFilters, alert: Pick<AlertNotice, 'severity' | 'ruleId' | 'tags'>): boolean {
  if (severityRank(alert.severity) < severityRank(filters.minSeverity)) return false;
  if (filters.ruleIds.length > 0 && !filters.ruleIds.includes(alert.ruleId)) return false;
  if (filters.tags.length > 0) {
    // A filter tag matches itself and everything below it: `attack.t1059` matches `attack.t1059.001`.
    const tags = alert.tags.map((t) => t.toLowerCase());
    if (!filters.tags.some((f) => tags.some((t) => t === f || t.startsWith(`${f}.`)))) return false;
  }
  return true;
}

const normaliseTags = (tags: string[]) => [...new Set(tags.map((t) => t.trim().toLowerCase()).filter(Boolean))];
const normaliseRuleIds = (ids: string[]) => [...new Set(ids.map((t) => t.trim()).filter(Boolean))];

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Notification channels and their delivery. `enqueueForAlert` writes outbox rows inside the
 * caller's transaction; `deliverDue` (the worker, see `startNotificationWorker`) sends them,
 * retrying with exponential backoff. Channel secrets are sealed with a key derived from
 * JWT_SECRET and never leave this class in a view.
 */
export class NotifyService {
  readonly maxAttempts: number;
  readonly #platform: Platform;
  readonly #options: Required<Omit<NotifyOptions, 'maxAttempts'>>;
  #box: SecretBox | undefined;

  constructor(platform: Platform, options: NotifyOptions = {}) {
    this.#platform = platform;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 10);
    this.#options = {
      timeoutMs: options.timeoutMs ?? 10_000,
      batchSize: options.batchSize ?? 50,
      concurrency: options.concurrency ?? 8,
      leaseMs: options.leaseMs ?? 5 * 60_000,
      telegramApiBase: options.telegramApiBase ?? 'https://api.telegram.org',
      clock: options.clock ?? (() => new Date()),
      random: options.random ?? Math.random,
    };
  }

  /** The box is made on first use: JWT_SECRET is resolved by then (commands that never notify need none). */
  get #secretBox(): SecretBox {
    if (!this.#box) {
      const secret = this.#platform.config.security.jwtSecret;
      if (!secret) throw new Error('JWT_SECRET is not resolved: channel secrets cannot be encrypted');
      this.#box = new SecretBox(secret, 'notification-channels');
    }
    return this.#box;
  }

  #validation() {
    return { production: this.#platform.config.isProduction, platformSmtp: Boolean(this.#platform.config.smtp.url) };
  }

  #aad(workspaceId: string, channelId: string): string {
    return `notification-channel:${workspaceId}:${channelId}`;
  }

  #openSecrets(row: { workspace_id: string; id: string; secret_ciphertext: string | null; secret_key_id: string | null }): ChannelSecrets {
    if (!row.secret_ciphertext || !row.secret_key_id) return {};
    return JSON.parse(this.#secretBox.open({ ciphertext: row.secret_ciphertext, keyId: row.secret_key_id }, this.#aad(row.workspace_id, row.id))) as ChannelSecrets;
  }

  // --- channels

  async listChannels(workspaceId: string): Promise<ChannelView[]> {
    return withWorkspace(this.#platform.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<ChannelRow>(`${CHANNEL_SELECT} WHERE c.workspace_id = $1 ORDER BY c.created_at, c.id`, [workspaceId]);
      return rows.map(toView);
    });
  }

  async getChannel(workspaceId: string, channelId: string): Promise<ChannelView> {
    return withWorkspace(this.#platform.db, workspaceId, async (tx) => toView(await this.#row(tx, workspaceId, channelId)));
  }

  async #row(tx: Queryable, workspaceId: string, channelId: string, lock = false): Promise<ChannelRow> {
    if (!isUuid(channelId)) throw new SiqError('SIQ_NOT_FOUND', 'No such notification channel.');
    const { rows } = await tx.query<ChannelRow>(`${CHANNEL_SELECT} WHERE c.workspace_id = $1 AND c.id = $2${lock ? ' FOR UPDATE OF c' : ''}`, [workspaceId, channelId]);
    if (!rows[0]) throw new SiqError('SIQ_NOT_FOUND', 'No such notification channel.');
    return rows[0];
  }

  async createChannel(workspaceId: string, input: CreateChannelInput, createdBy?: string): Promise<ChannelView> {
    const { secrets, settings } = resolveChannelConfig(input.type, input.config, this.#validation());
    const id = randomUUID();
    const sealed = this.#secretBox.seal(JSON.stringify(secrets), this.#aad(workspaceId, id));
    return withWorkspace(this.#platform.db, workspaceId, async (tx) => {
      await tx.query(
        `INSERT INTO notification_channels (id, workspace_id, name, type, enabled, min_severity, rule_ids, tags, settings, secret_ciphertext, secret_key_id, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12)`,
        [id, workspaceId, input.name.trim(), input.type, input.enabled ?? true, input.minSeverity ?? 'low', normaliseRuleIds(input.ruleIds ?? []), normaliseTags(input.tags ?? []),
          JSON.stringify(settings), sealed.ciphertext, sealed.keyId, createdBy ?? null],
      );
      return toView(await this.#row(tx, workspaceId, id));
    });
  }

  /** Changes what is given; secrets are replaced only when given (others keep their stored value). */
  async updateChannel(workspaceId: string, channelId: string, input: UpdateChannelInput): Promise<ChannelView> {
    return withWorkspace(this.#platform.db, workspaceId, async (tx) => {
      const row = await this.#row(tx, workspaceId, channelId, true);
      let sealed: { ciphertext: string; keyId: string } | undefined;
      let settings = row.settings;
      if (input.config) {
        let secrets: ChannelSecrets = {};
        try {
          secrets = this.#openSecrets(row);
        } catch (err) {
          // Sealed under an earlier JWT_SECRET: the update must give the secrets again (the check below asks for them).
          if (!(err instanceof SecretBoxError)) throw err;
        }
        const resolved = resolveChannelConfig(row.type, input.config, this.#validation(), { secrets, settings: row.settings });
        settings = resolved.settings;
        sealed = this.#secretBox.seal(JSON.stringify(resolved.secrets), this.#aad(workspaceId, channelId));
      }
      await tx.query(
        `UPDATE notification_channels
            SET name = $3, enabled = $4, min_severity = $5, rule_ids = $6, tags = $7, settings = $8::jsonb,
                secret_ciphertext = coalesce($9, secret_ciphertext), secret_key_id = coalesce($10, secret_key_id), updated_at = now()
          WHERE workspace_id = $1 AND id = $2`,
        [workspaceId, channelId, input.name?.trim() ?? row.name, input.enabled ?? row.enabled, input.minSeverity ?? row.min_severity,
          input.ruleIds ? normaliseRuleIds(input.ruleIds) : row.rule_ids, input.tags ? normaliseTags(input.tags) : row.tags,
          JSON.stringify(settings), sealed?.ciphertext ?? null, sealed?.keyId ?? null],
      );
      return toView(await this.#row(tx, workspaceId, channelId));
    });
  }

  /** Deletes the channel and its delivery history (pending deliveries are dropped). */
  async deleteChannel(workspaceId: string, channelId: string): Promise<ChannelView> {
    return withWorkspace(this.#platform.db, workspaceId, async (tx) => {
      const row = await this.#row(tx, workspaceId, channelId, true);
      await tx.query('DELETE FROM notification_channels WHERE workspace_id = $1 AND id = $2', [workspaceId, channelId]);
      return toView(row);
    });
  }

  async deliveries(workspaceId: string, channelId: string, options: { limit?: number; status?: DeliveryView['status'] } = {}): Promise<DeliveryView[]> {
    return withWorkspace(this.#platform.db, workspaceId, async (tx) => {
      await this.#row(tx, workspaceId, channelId);
      const { rows } = await tx.query<DeliveryView>(
        `SELECT id, channel_id AS "channelId", alert_id AS "alertId", kind, status, attempts, max_attempts AS "maxAttempts",
                CASE WHEN status = 'pending' THEN next_attempt_at END AS "nextAttemptAt", last_attempt_at AS "lastAttemptAt",
                last_error AS "lastError", last_status_code AS "lastStatusCode", sent_at AS "sentAt", created_at AS "createdAt",
                json_build_object('severity', payload ->> 'severity', 'ruleTitle', payload ->> 'ruleTitle') AS alert
           FROM notification_outbox
          WHERE workspace_id = $1 AND channel_id = $2 AND ($3::text IS NULL OR status = $3)
          ORDER BY created_at DESC, id
          LIMIT $4`,
        [workspaceId, channelId, options.status ?? null, Math.min(Math.max(options.limit ?? 50, 1), 500)],
      );
      return rows;
    });
  }

  // --- enqueueing

  /**
   * Writes one outbox row per enabled channel of the alert's workspace whose filters select the
   * alert, inside the caller's transaction `tx` (so the rows commit with the alert, or not at
   * all). Enqueueing the same alert again adds nothing. Returns the number of rows written.
   */
  async enqueueForAlert(tx: Queryable, alert: AlertNotice): Promise<number> {
    if (!isUuid(alert.id) || !isUuid(alert.workspaceId)) throw new Error('enqueueForAlert: alert.id and alert.workspaceId must be uuids');
    const { rows } = await tx.query<{ id: string; min_severity: Severity; rule_ids: string[]; tags: string[] }>(
      'SELECT id, min_severity, rule_ids, tags FROM notification_channels WHERE workspace_id = $1 AND enabled',
      [alert.workspaceId],
    );
    const matching = rows.filter((c) => channelMatches({ minSeverity: c.min_severity, ruleIds: c.rule_ids, tags: c.tags }, alert)).map((c) => c.id);
    return insertAlertRows(tx, alert, matching, this.maxAttempts, this.#options.clock());
  }

  /** Queues a test notification through one channel (whatever its filters); the worker sends it. */
  async enqueueTest(workspaceId: string, channelId: string): Promise<{ deliveryId: string }> {
    return withWorkspace(this.#platform.db, workspaceId, async (tx) => {
      await this.#row(tx, workspaceId, channelId);
      const now = this.#options.clock();
      const notice: AlertNotice = {
        id: randomUUID(), workspaceId, ruleId: 'platform:notification-test', ruleTitle: 'Test notification', ruleKind: 'platform',
        severity: 'informational', groupKey: '', status: 'test', count: 1, firstSeen: now.toISOString(), lastSeen: now.toISOString(), tags: [],
      };
      return { deliveryId: await insertTestRow(tx, workspaceId, channelId, notice, this.maxAttempts, now) };
    });
  }

  // --- delivery

  /**
   * Claims the rows due at `now` (default: the clock), sends them and records each outcome: sent,
   * retried later (exponential backoff, or the receiver's Retry-After) or failed for good.
   * Safe to run in several processes at once: each row is claimed by one worker.
   */
  async deliverDue(now: Date = this.#options.clock()): Promise<{ sent: number; failed: number; retried: number }> {
    const totals = { sent: 0, failed: 0, retried: 0 };
    const { batchSize, concurrency, leaseMs } = this.#options;
    for (let round = 0; round < 20; round++) {
      const claimToken = randomUUID();
      const claimed = await claimDue(this.#platform.db, now, claimToken, new Date(now.getTime() + leaseMs), batchSize);
      if (claimed.length === 0) break;
      await mapLimit(claimed, concurrency, async (row) => {
        totals[await this.#attempt(row, claimToken, now)]++;
      });
      if (claimed.length < batchSize) break;
    }
    return totals;
  }

  async #attempt(row: ClaimedRow, claimToken: string, now: Date): Promise<'sent' | 'failed' | 'retried'> {
    const { db, config, logger } = this.#platform;
    const log = logger.child({ component: 'notify', deliveryId: row.id, channelId: row.channel_id, workspaceId: row.workspace_id });
    let secrets: ChannelSecrets = {};
    try {
      if (!row.enabled) throw new DeliveryFailure('the channel was disabled before delivery', { permanent: true });
      try {
        secrets = this.#openSecrets({ id: row.channel_id, workspace_id: row.workspace_id, secret_ciphertext: row.secret_ciphertext, secret_key_id: row.secret_key_id });
      } catch (err) {
        if (!(err instanceof SecretBoxError)) throw err;
        throw new DeliveryFailure(`the channel's secrets cannot be decrypted (${err.message}): enter them again`, { permanent: true });
      }
      const notice: Notice = {
        kind: row.kind,
        deliveryId: row.id,
        channelId: row.channel_id,
        alert: row.payload,
        link: row.kind === 'test'
          ? `${config.publicUrl}/workspaces/${row.workspace_id}/notification-channels/${row.channel_id}`
          : `${config.publicUrl}/workspaces/${row.workspace_id}/alerts/${row.payload.id}`,
      };
      const result = await send({ id: row.channel_id, type: row.type, settings: row.settings as ChannelSettings, secrets }, notice, {
        timeoutMs: this.#options.timeoutMs,
        telegramApiBase: this.#options.telegramApiBase,
        userAgent: `SentinelIQ/${config.version}`,
        smtp: config.smtp,
        now: this.#options.clock(),
      });
      if (!(await markSent(db, row.id, claimToken, this.#options.clock(), result.statusCode))) log.warn('delivery sent after its claim expired');
      return 'sent';
    } catch (err) {
      const failure = err instanceof DeliveryFailure ? err : new DeliveryFailure((err as Error).message);
      const message = scrub(failure.message, secrets);
      const giveUp = failure.permanent || row.attempts >= row.max_attempts;
      const delay = failure.retryAfterMs !== undefined ? Math.min(Math.max(failure.retryAfterMs, 1000), MAX_RETRY_MS) : retryDelayMs(row.attempts, this.#options.random);
      const retryAt = giveUp ? null : new Date(now.getTime() + delay);
      await markFailed(db, row.id, claimToken, message, failure.statusCode, retryAt);
      log.warn({ attempts: row.attempts, retryAt, error: message }, giveUp ? 'notification failed for good' : 'notification failed; will retry');
      return giveUp ? 'failed' : 'retried';
    }
  }
}

/** An error text safe to store and show: the channel's secrets (and their URL-encoded forms) removed, secret-looking fragments redacted. */
export function scrub(message: string, secrets: ChannelSecrets): string {
  const forms = new Set<string>();
  for (const value of Object.values(secrets)) {
    if (typeof value !== 'string' || value.length < 4) continue;
    forms.add(value).add(encodeURIComponent(value)).add(encodeURI(value));
    if (value.includes(':')) for (const part of value.split(':')) if (part.length >= 8) forms.add(part); // bot tokens: the part after the id
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
      // Webhook URLs carry their credential in the path or query: a receiver may echo either alone.
      try {
        const url = new URL(value);
        if (url.pathname.length > 1) forms.add(url.pathname + url.search).add(url.pathname);
        for (const part of [...url.pathname.split('/'), ...url.searchParams.values()]) if (part.length >= 6) forms.add(part);
      } catch {
        // not a URL after all
      }
    }
  }
  let out = message;
  for (const form of [...forms].sort((a, b) => b.length - a.length)) out = out.split(form).join('[secret]');
  return redactString(out).slice(0, 500);
}

/**
 * Runs `deliverDue` every `intervalMs` (default 5 s) through the platform scheduler. Its
 * "finished" lines are logged at debug-quiet level so a busy interval does not flood the log;
 * failures are still logged.
 */
export function startNotificationWorker(platform: Platform, service: NotifyService, intervalMs = 5_000): ScheduledJob {
  const quiet = platform.logger.levelVal < platform.logger.levels.values.warn! ? platform.logger.child({}, { level: 'warn' }) : platform.logger;
  return schedule({ cache: platform.cache, logger: quiet }, 'notification-delivery', intervalMs, () => service.deliverDue());
}
