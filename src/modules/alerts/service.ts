import { randomUUID } from 'node:crypto';
import { SiqError } from '../../errors.js';
import { isUuid } from '../../http/auth.js';
import { decodeCursor, encodeCursor, escapeLike } from '../../platform/db/keyset.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import type { Queryable } from '../../platform/db/types.js';
import type { Platform } from '../../platform/index.js';
import { SEVERITIES, severityRank, type AlertNotice, type Detection, type EventRef, type Severity } from './types.js';

export const ALERT_STATUSES = ['new', 'acknowledged', 'in_progress', 'resolved', 'false_positive'] as const;
export type AlertStatus = (typeof ALERT_STATUSES)[number];

/** Statuses in which an alert is still being worked (and may aggregate repeats). */
export const OPEN_STATUSES: readonly AlertStatus[] = ['new', 'acknowledged', 'in_progress'];

/**
 * The lifecycle: from each status, where an alert may go. Closed alerts (resolved,
 * false_positive) may be reopened to in_progress; a reopened alert no longer aggregates.
 */
export const TRANSITIONS: Readonly<Record<AlertStatus, readonly AlertStatus[]>> = {
  new: ['acknowledged', 'in_progress', 'resolved', 'false_positive'],
  acknowledged: ['in_progress', 'resolved', 'false_positive'],
  in_progress: ['resolved', 'false_positive'],
  resolved: ['in_progress'],
  false_positive: ['in_progress'],
};

export function canTransition(from: AlertStatus, to: AlertStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Default aggregation window: repeats within an hour of an alert's first detection join it. */
export const DEFAULT_AGGREGATE_WINDOW_MS = 60 * 60 * 1000;
/** Event references kept per alert (the first ones, distinct by id); `count` keeps counting. */
export const MAX_EVENT_REFS = 200;

/** Who changed something: a user, an API key, or neither (the platform itself). */
export interface Actor {
  userId?: string;
  apiKeyId?: string;
}

export interface AlertSummary {
  id: string;
  workspaceId: string;
  ruleId: string;
  ruleTitle: string;
  ruleKind: Detection['ruleKind'];
  groupKey: string;
  title: string;
  severity: Severity;
  status: AlertStatus;
  /** Whether repeats of the rule and group key still join this alert. */
  aggregating: boolean;
  assigneeId: string | null;
  count: number;
  firstSeen: string;
  lastSeen: string;
  tags: string[];
  createdAt: string;
  updatedAt: string;
  resolvedAt: string | null;
}

export interface Alert extends AlertSummary {
  eventRefs: EventRef[];
  details: Record<string, unknown>;
}

export interface AlertComment {
  id: string;
  alertId: string;
  authorUserId: string | null;
  authorEmail: string | null;
  authorApiKeyId: string | null;
  text: string;
  createdAt: string;
}

export interface AlertHistoryEntry {
  id: number;
  alertId: string;
  action: 'created' | 'status' | 'assignment' | 'comment' | 'severity';
  actorUserId: string | null;
  actorApiKeyId: string | null;
  from: string | null;
  to: string | null;
  details: Record<string, unknown>;
  at: string;
}

export interface AlertFilters {
  status?: AlertStatus[];
  /** Any of these severities. */
  severity?: Severity[];
  /** This severity or higher. */
  minSeverity?: Severity;
  ruleId?: string;
  /** A user id, or null for unassigned alerts. */
  assigneeId?: string | null;
  /** last_seen at or after. */
  from?: Date;
  /** last_seen before. */
  to?: Date;
  /** Case-insensitive text in the title, rule title or group key. */
  q?: string;
  limit?: number;
  /** From the previous page's `nextCursor`. */
  cursor?: string;
}

export interface AlertUpdate {
  status?: AlertStatus;
  /** A member's user id, or null to unassign. */
  assigneeId?: string | null;
  comment?: string;
}

export interface AlertServiceOptions {
  aggregateWindowMs?: number;
  /**
   * Called inside the transaction that creates an alert (never on aggregation), so whatever it
   * writes (a notification outbox row) commits or rolls back with the alert. Throwing rolls back.
   */
  onRaised?: (tx: Queryable, alert: AlertNotice) => Promise<void>;
}

interface AlertRow {
  id: string;
  workspace_id: string;
  rule_id: string;
  rule_title: string;
  rule_kind: Detection['ruleKind'];
  group_key: string;
  title: string;
  severity: Severity;
  status: AlertStatus;
  aggregating: boolean;
  assignee_id: string | null;
  count: number | string;
  first_seen: Date;
  last_seen: Date;
  event_refs: EventRef[];
  tags: string[];
  details: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
  resolved_at: Date | null;
}

const SUMMARY_COLUMNS = 'id, workspace_id, rule_id, rule_title, rule_kind, group_key, title, severity, status, aggregating, assignee_id, count, first_seen, last_seen, tags, created_at, updated_at, resolved_at';

function presentSummary(r: Omit<AlertRow, 'event_refs' | 'details'>): AlertSummary {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    ruleId: r.rule_id,
    ruleTitle: r.rule_title,
    ruleKind: r.rule_kind,
    groupKey: r.group_key,
    title: r.title,
    severity: r.severity,
    status: r.status,
    aggregating: r.aggregating,
    assigneeId: r.assignee_id,
    count: Number(r.count),
    firstSeen: r.first_seen.toISOString(),
    lastSeen: r.last_seen.toISOString(),
    tags: r.tags,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    resolvedAt: r.resolved_at ? r.resolved_at.toISOString() : null,
  };
}

function present(r: AlertRow): Alert {
  return { ...presentSummary(r), eventRefs: r.event_refs, details: r.details };
}

/** The notification's view of an alert. */
export function toNotice(alert: AlertSummary): AlertNotice {
  return {
    id: alert.id,
    workspaceId: alert.workspaceId,
    ruleId: alert.ruleId,
    ruleTitle: alert.ruleTitle,
    ruleKind: alert.ruleKind,
    severity: alert.severity,
    groupKey: alert.groupKey,
    status: alert.status,
    count: alert.count,
    firstSeen: alert.firstSeen,
    lastSeen: alert.lastSeen,
    tags: alert.tags,
  };
}

const RULE_KINDS: ReadonlyArray<Detection['ruleKind']> = ['sigma', 'threshold', 'correlation', 'platform'];

/** Checks a detection and returns a normalised copy (valid time, distinct well-formed refs). */
function checkDetection(d: Detection): Detection & { at: Date } {
  const problems: string[] = [];
  if (!isUuid(d.workspaceId)) problems.push('workspaceId must be a workspace id');
  if (typeof d.ruleId !== 'string' || d.ruleId.length === 0 || d.ruleId.length > 200) problems.push('ruleId must be 1-200 characters');
  if (typeof d.ruleTitle !== 'string' || d.ruleTitle.length === 0) problems.push('ruleTitle is required');
  if (!RULE_KINDS.includes(d.ruleKind)) problems.push(`ruleKind must be one of ${RULE_KINDS.join(', ')}`);
  if (!SEVERITIES.includes(d.severity)) problems.push(`severity must be one of ${SEVERITIES.join(', ')}`);
  if (typeof d.groupKey !== 'string') problems.push('groupKey must be a string');
  const at = new Date(d.at);
  if (Number.isNaN(at.getTime())) problems.push('at must be a valid time');
  if (problems.length > 0) throw new SiqError('SIQ_VALIDATION', `Invalid detection: ${problems.join('; ')}.`, { details: problems });
  return { ...d, at, events: mergeRefs([], d.events ?? []) };
}

/** Appends refs not yet present (by id), keeping at most MAX_EVENT_REFS. */
function mergeRefs(existing: readonly EventRef[], added: readonly EventRef[]): EventRef[] {
  const out = existing.slice(0, MAX_EVENT_REFS);
  const seen = new Set(out.map((r) => r.id));
  for (const ref of added) {
    if (out.length >= MAX_EVENT_REFS) break;
    if (!ref || typeof ref.id !== 'string' || seen.has(ref.id)) continue;
    seen.add(ref.id);
    out.push({ id: ref.id, ts: String(ref.ts) });
  }
  return out;
}

function titleOf(d: Detection): string {
  return d.groupKey ? `${d.ruleTitle} — ${d.groupKey}` : d.ruleTitle;
}

// Code-unit order, the same in every process (unlike localeCompare).
const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const later = (a: Date, b: Date) => (a.getTime() >= b.getTime() ? a : b);
const earlier = (a: Date, b: Date) => (a.getTime() <= b.getTime() ? a : b);

/**
 * Alerts: raised from detections, aggregated per rule and group key, worked through the
 * lifecycle in TRANSITIONS, assigned, commented, with an append-only history.
 *
 * Aggregation: a detection joins the workspace's aggregating alert of the same rule and group
 * key when its time is less than `aggregateWindowMs` after that alert's first_seen; otherwise
 * that alert stops aggregating (it stays open for whoever works it) and a new one is created.
 * At most one alert per rule and group key aggregates (a partial unique index), so concurrent
 * raises across processes create one alert: the loser's INSERT conflicts and it aggregates.
 */
export class AlertService {
  private readonly windowMs: number;
  private readonly onRaised?: AlertServiceOptions['onRaised'];

  constructor(private readonly platform: Platform, options: AlertServiceOptions = {}) {
    this.windowMs = options.aggregateWindowMs ?? DEFAULT_AGGREGATE_WINDOW_MS;
    if (!(this.windowMs > 0)) throw new Error('aggregateWindowMs must be positive');
    this.onRaised = options.onRaised;
  }

  /** Creates an alert for the detection, or aggregates it into the open one of its rule and group key. */
  async raise(d: Detection): Promise<{ alert: Alert; created: boolean }> {
    const detection = checkDetection(d);
    return withWorkspace(this.platform.db, detection.workspaceId, (tx) => this.raiseIn(tx, detection));
  }

  /**
   * Raises several detections: one transaction per workspace, processed in a fixed order (rule,
   * group key, time) so concurrent batches lock alerts in the same order. Returns one result
   * per detection, in input order (`created` is true only for the detection that created it).
   */
  async raiseMany(ds: Detection[]): Promise<Array<{ alert: Alert; created: boolean }>> {
    const checked = ds.map((d, index) => ({ index, d: checkDetection(d) }));
    const results: Array<{ alert: Alert; created: boolean }> = new Array(ds.length);
    const byWorkspace = new Map<string, typeof checked>();
    for (const item of checked) {
      const list = byWorkspace.get(item.d.workspaceId) ?? [];
      list.push(item);
      byWorkspace.set(item.d.workspaceId, list);
    }
    for (const [workspaceId, items] of [...byWorkspace].sort(([a], [b]) => compare(a, b))) {
      items.sort((x, y) => compare(x.d.ruleId, y.d.ruleId) || compare(x.d.groupKey, y.d.groupKey) || x.d.at.getTime() - y.d.at.getTime());
      await withWorkspace(this.platform.db, workspaceId, async (tx) => {
        for (const item of items) results[item.index] = await this.raiseIn(tx, item.d);
      });
    }
    return results;
  }

  private async raiseIn(tx: Queryable, d: Detection & { at: Date }): Promise<{ alert: Alert; created: boolean }> {
    const key = [d.workspaceId, d.ruleId, d.groupKey];
    for (let attempt = 0; attempt < 5; attempt++) {
      // Lock the aggregating alert, if any: concurrent raises of this key queue here.
      const { rows } = await tx.query<AlertRow>('SELECT * FROM alerts WHERE workspace_id = $1 AND rule_id = $2 AND group_key = $3 AND aggregating FOR UPDATE', key);
      const current = rows[0];
      if (current && d.at.getTime() - current.first_seen.getTime() < this.windowMs) {
        return { alert: await this.aggregate(tx, current, d), created: false };
      }
      if (current) await tx.query('UPDATE alerts SET aggregating = false, updated_at = now() WHERE id = $1', [current.id]);

      const id = randomUUID();
      const inserted = await tx.query<AlertRow>(
        `INSERT INTO alerts (id, workspace_id, rule_id, rule_title, rule_kind, group_key, title, severity, first_seen, last_seen, event_refs, tags, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12)
         ON CONFLICT (workspace_id, rule_id, group_key) WHERE aggregating DO NOTHING
         RETURNING *`,
        [id, d.workspaceId, d.ruleId, d.ruleTitle, d.ruleKind, d.groupKey, titleOf(d), d.severity, d.at, JSON.stringify(d.events), [...new Set(d.tags ?? [])], JSON.stringify(d.details ?? {})],
      );
      const row = inserted.rows[0];
      if (!row) continue; // another transaction created it meanwhile: aggregate into that one
      await this.record(tx, row.workspace_id, row.id, 'created', {}, null, row.status, { ruleId: d.ruleId, groupKey: d.groupKey, severity: d.severity });
      const alert = present(row);
      if (this.onRaised) await this.onRaised(tx, toNotice(alert));
      return { alert, created: true };
    }
    throw new SiqError('SIQ_CONFLICT', 'The alert kept changing while it was raised. Try again.');
  }

  private async aggregate(tx: Queryable, current: AlertRow, d: Detection & { at: Date }): Promise<Alert> {
    const severity = severityRank(d.severity) > severityRank(current.severity) ? d.severity : current.severity;
    const tags = [...new Set([...current.tags, ...(d.tags ?? [])])];
    const { rows } = await tx.query<AlertRow>(
      `UPDATE alerts SET count = count + 1, first_seen = $2, last_seen = $3, event_refs = $4, severity = $5, tags = $6,
         details = details || $7::jsonb, rule_title = $8, updated_at = now()
       WHERE id = $1 RETURNING *`,
      [current.id, earlier(current.first_seen, d.at), later(current.last_seen, d.at), JSON.stringify(mergeRefs(current.event_refs, d.events)), severity, tags, JSON.stringify(d.details ?? {}), d.ruleTitle],
    );
    if (severity !== current.severity) await this.record(tx, current.workspace_id, current.id, 'severity', {}, current.severity, severity, {});
    return present(rows[0]!);
  }

  private async record(tx: Queryable, workspaceId: string, alertId: string, action: AlertHistoryEntry['action'], actor: Actor, from: string | null, to: string | null, details: Record<string, unknown>): Promise<void> {
    await tx.query(
      'INSERT INTO alert_history (workspace_id, alert_id, action, actor_user_id, actor_api_key_id, from_value, to_value, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
      [workspaceId, alertId, action, actor.userId ?? null, actor.apiKeyId ?? null, from, to, JSON.stringify(details)],
    );
  }

  /** Alerts of a workspace, newest last_seen first, `limit` per page (default 50, at most 500). */
  async list(workspaceId: string, filters: AlertFilters = {}): Promise<{ alerts: AlertSummary[]; nextCursor: string | null }> {
    const where = ['workspace_id = $1'];
    const params: unknown[] = [workspaceId];
    const add = (sql: (n: string) => string, value: unknown) => {
      params.push(value);
      where.push(sql(`$${params.length}`));
    };
    if (filters.status?.length) add((n) => `status = ANY(${n}::text[])`, filters.status);
    if (filters.severity?.length) add((n) => `severity = ANY(${n}::text[])`, filters.severity);
    if (filters.minSeverity) add((n) => `severity_rank >= ${n}`, severityRank(filters.minSeverity));
    if (filters.ruleId) add((n) => `rule_id = ${n}`, filters.ruleId);
    if (filters.assigneeId === null) where.push('assignee_id IS NULL');
    else if (filters.assigneeId !== undefined) add((n) => `assignee_id = ${n}`, filters.assigneeId);
    if (filters.from) add((n) => `last_seen >= ${n}`, filters.from);
    if (filters.to) add((n) => `last_seen < ${n}`, filters.to);
    if (filters.q) add((n) => `(title ILIKE ${n} OR rule_title ILIKE ${n} OR group_key ILIKE ${n})`, `%${escapeLike(filters.q)}%`);
    if (filters.cursor) {
      const c = decodeCursor(filters.cursor);
      params.push(c.time, c.id);
      where.push(`(last_seen, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    const limit = Math.min(Math.max(filters.limit ?? 50, 1), 500);
    params.push(limit + 1);
    const sql = `SELECT ${SUMMARY_COLUMNS}, to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_ts
      FROM alerts WHERE ${where.join(' AND ')} ORDER BY last_seen DESC, id DESC LIMIT $${params.length}`;
    const rows = await withWorkspace(this.platform.db, workspaceId, async (tx) => (await tx.query<AlertRow & { cursor_ts: string }>(sql, params)).rows);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { alerts: page.map(presentSummary), nextCursor: rows.length > limit && last ? encodeCursor(last.cursor_ts, last.id) : null };
  }

  /** One alert with its event references and comments; SIQ_NOT_FOUND outside the workspace. */
  async get(workspaceId: string, alertId: string): Promise<Alert & { comments: AlertComment[] }> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const alert = present(await this.load(tx, workspaceId, alertId));
      return { ...alert, comments: await this.commentsOf(tx, workspaceId, alertId) };
    });
  }

  /** Moves an alert along the lifecycle (TRANSITIONS); anything else is SIQ_ALERT_TRANSITION. */
  async transition(workspaceId: string, alertId: string, status: AlertStatus, actor: Actor = {}): Promise<Alert> {
    return this.update(workspaceId, alertId, { status }, actor);
  }

  /** Assigns an alert to a member of its workspace (SIQ_ALERT_ASSIGNEE otherwise), or unassigns it with null. */
  async assign(workspaceId: string, alertId: string, assigneeId: string | null, actor: Actor = {}): Promise<Alert> {
    return this.update(workspaceId, alertId, { assigneeId }, actor);
  }

  /** Adds a comment (and a history entry). */
  async comment(workspaceId: string, alertId: string, text: string, actor: Actor = {}): Promise<AlertComment> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const row = await this.load(tx, workspaceId, alertId, true);
      return this.addComment(tx, row, text, actor);
    });
  }

  /** Status, assignee and a comment in one transaction: all of it happens or none. */
  async update(workspaceId: string, alertId: string, change: AlertUpdate, actor: Actor = {}): Promise<Alert> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      let row = await this.load(tx, workspaceId, alertId, true);
      if (change.assigneeId !== undefined && change.assigneeId !== row.assignee_id) {
        const assignee = change.assigneeId;
        if (assignee !== null) {
          const member = isUuid(assignee) && (await tx.query('SELECT 1 FROM workspace_members WHERE workspace_id = $1 AND user_id = $2', [workspaceId, assignee])).rows.length > 0;
          if (!member) throw new SiqError('SIQ_ALERT_ASSIGNEE');
        }
        const previous = row.assignee_id;
        row = (await tx.query<AlertRow>('UPDATE alerts SET assignee_id = $2, updated_at = now() WHERE id = $1 RETURNING *', [row.id, assignee])).rows[0]!;
        await this.record(tx, workspaceId, row.id, 'assignment', actor, previous, assignee, {});
      }
      if (change.status !== undefined) {
        const from = row.status;
        const to = change.status;
        if (!ALERT_STATUSES.includes(to) || !canTransition(from, to)) {
          throw new SiqError('SIQ_ALERT_TRANSITION', `An alert cannot go from ${from} to ${to}. Allowed from ${from}: ${TRANSITIONS[from].join(', ') || 'nothing'}.`, { details: { from, to, allowed: TRANSITIONS[from] } });
        }
        const closing = !OPEN_STATUSES.includes(to);
        row = (await tx.query<AlertRow>(
          `UPDATE alerts SET status = $2, aggregating = aggregating AND NOT $3, resolved_at = CASE WHEN $3 THEN now() ELSE NULL END, updated_at = now() WHERE id = $1 RETURNING *`,
          [row.id, to, closing],
        )).rows[0]!;
        await this.record(tx, workspaceId, row.id, 'status', actor, from, to, {});
      }
      if (change.comment !== undefined) await this.addComment(tx, row, change.comment, actor);
      return present(row);
    });
  }

  /** Every recorded change of an alert, oldest first. */
  async history(workspaceId: string, alertId: string): Promise<AlertHistoryEntry[]> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      await this.load(tx, workspaceId, alertId);
      const { rows } = await tx.query<{ id: number | string; alert_id: string; action: AlertHistoryEntry['action']; actor_user_id: string | null; actor_api_key_id: string | null; from_value: string | null; to_value: string | null; details: Record<string, unknown>; created_at: Date }>(
        'SELECT * FROM alert_history WHERE workspace_id = $1 AND alert_id = $2 ORDER BY id',
        [workspaceId, alertId],
      );
      return rows.map((r) => ({
        id: Number(r.id),
        alertId: r.alert_id,
        action: r.action,
        actorUserId: r.actor_user_id,
        actorApiKeyId: r.actor_api_key_id,
        from: r.from_value,
        to: r.to_value,
        details: r.details,
        at: r.created_at.toISOString(),
      }));
    });
  }

  private async load(tx: Queryable, workspaceId: string, alertId: string, forUpdate = false): Promise<AlertRow> {
    if (!isUuid(alertId)) throw new SiqError('SIQ_NOT_FOUND', 'No such alert.');
    const { rows } = await tx.query<AlertRow>(`SELECT * FROM alerts WHERE workspace_id = $1 AND id = $2${forUpdate ? ' FOR UPDATE' : ''}`, [workspaceId, alertId]);
    if (!rows[0]) throw new SiqError('SIQ_NOT_FOUND', 'No such alert.');
    return rows[0];
  }

  private async addComment(tx: Queryable, alert: AlertRow, text: string, actor: Actor): Promise<AlertComment> {
    const body = text.trim();
    if (body.length === 0 || body.length > 10_000) throw new SiqError('SIQ_VALIDATION', 'A comment needs 1 to 10000 characters.');
    const { rows } = await tx.query<{ id: string; created_at: Date }>(
      'INSERT INTO alert_comments (workspace_id, alert_id, author_user_id, author_api_key_id, text) VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at',
      [alert.workspace_id, alert.id, actor.userId ?? null, actor.apiKeyId ?? null, body],
    );
    const row = rows[0]!;
    await this.record(tx, alert.workspace_id, alert.id, 'comment', actor, null, null, { commentId: row.id });
    const email = actor.userId ? (await tx.query<{ email: string }>('SELECT email FROM users WHERE id = $1', [actor.userId])).rows[0]?.email ?? null : null;
    return { id: row.id, alertId: alert.id, authorUserId: actor.userId ?? null, authorEmail: email, authorApiKeyId: actor.apiKeyId ?? null, text: body, createdAt: row.created_at.toISOString() };
  }

  private async commentsOf(tx: Queryable, workspaceId: string, alertId: string): Promise<AlertComment[]> {
    const { rows } = await tx.query<{ id: string; alert_id: string; author_user_id: string | null; email: string | null; author_api_key_id: string | null; text: string; created_at: Date }>(
      'SELECT c.id, c.alert_id, c.author_user_id, u.email, c.author_api_key_id, c.text, c.created_at FROM alert_comments c LEFT JOIN users u ON u.id = c.author_user_id WHERE c.workspace_id = $1 AND c.alert_id = $2 ORDER BY c.created_at, c.id',
      [workspaceId, alertId],
    );
    return rows.map((r) => ({ id: r.id, alertId: r.alert_id, authorUserId: r.author_user_id, authorEmail: r.email, authorApiKeyId: r.author_api_key_id, text: r.text, createdAt: r.created_at.toISOString() }));
  }
}
