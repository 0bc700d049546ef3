import { SiqError } from '../../errors.js';
import { isUuid } from '../../http/auth.js';
import { decodeCursor, encodeCursor, escapeLike } from '../../platform/db/keyset.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import type { Queryable } from '../../platform/db/types.js';
import type { Platform } from '../../platform/index.js';
import type { Actor, Alert, AlertService } from '../alerts/service.js';
import { SEVERITIES, severityRank, type EventRef, type Severity } from '../alerts/types.js';
import { eventDocSql } from '../events/stored-doc.js';
import { extractObservables, normaliseObservable, OBSERVABLE_TYPES, type ObservableType } from './observables.js';

export type { Actor } from '../alerts/service.js';

export const INCIDENT_STATUSES = ['open', 'investigating', 'contained', 'resolved', 'closed'] as const;
export type IncidentStatus = (typeof INCIDENT_STATUSES)[number];

/**
 * The lifecycle: from each status, where an incident may go. Forward along
 * open → investigating → contained → resolved → closed; an incident that turns out to be
 * nothing may be closed from open or investigating; containment that did not hold goes back to
 * investigating; resolved and closed incidents may be reopened (to investigating).
 */
export const INCIDENT_TRANSITIONS: Readonly<Record<IncidentStatus, readonly IncidentStatus[]>> = {
  open: ['investigating', 'closed'],
  investigating: ['contained', 'resolved', 'closed'],
  contained: ['resolved', 'investigating'],
  resolved: ['closed', 'investigating'],
  closed: ['investigating'],
};

export const TASK_STATUSES = ['todo', 'in_progress', 'done', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** MITRE ATT&CK technique or sub-technique id. */
export const TECHNIQUE = /^T\d{4}(\.\d{3})?$/;
const MAX_TAGS = 50;
const MAX_ALERTS_PER_CALL = 100;

export interface Incident {
  id: string;
  workspaceId: string;
  title: string;
  description: string;
  severity: Severity;
  status: IncidentStatus;
  assigneeId: string | null;
  tags: string[];
  techniques: string[];
  createdBy: string | null;
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
}

export interface IncidentTask {
  id: string;
  incidentId: string;
  title: string;
  description: string;
  ownerId: string | null;
  status: TaskStatus;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
}

export interface IncidentComment {
  id: string;
  incidentId: string;
  authorUserId: string | null;
  authorEmail: string | null;
  authorApiKeyId: string | null;
  text: string;
  createdAt: string;
}

export interface Observable {
  id: string;
  incidentId: string;
  type: ObservableType;
  value: string;
  /** Event fields it was found in. */
  fields: string[];
  /** Linked alerts whose events carried it. */
  alertIds: string[];
  /** Added by a person. */
  manual: boolean;
  note: string;
  createdAt: string;
}

export interface TimelineEntry {
  id: number;
  incidentId: string;
  action: string;
  actorUserId: string | null;
  actorEmail: string | null;
  actorApiKeyId: string | null;
  summary: string;
  details: Record<string, unknown>;
  at: string;
}

export interface IncidentDetail extends Incident {
  alertIds: string[];
  tasks: IncidentTask[];
  comments: IncidentComment[];
}

export interface CreateIncident {
  title?: string;
  description?: string;
  severity?: Severity;
  alertIds?: string[];
  assigneeId?: string | null;
  tags?: string[];
  techniques?: string[];
}

export interface IncidentUpdate {
  title?: string;
  description?: string;
  severity?: Severity;
  status?: IncidentStatus;
  assigneeId?: string | null;
  tags?: string[];
  techniques?: string[];
}

export interface IncidentFilters {
  status?: IncidentStatus[];
  severity?: Severity[];
  assigneeId?: string | null;
  tag?: string;
  q?: string;
  limit?: number;
  cursor?: string;
}

export interface ObservableHit {
  incidentId: string;
  incidentTitle: string;
  incidentStatus: IncidentStatus;
  incidentSeverity: Severity;
  observableId: string;
  type: ObservableType;
  value: string;
  alertIds: string[];
  manual: boolean;
  createdAt: string;
}

/** Everything an export needs besides evidence. */
export interface IncidentExport {
  incident: IncidentDetail;
  timeline: TimelineEntry[];
  alerts: Alert[];
  events: Array<{ id: string; ts: string; doc: Record<string, unknown> }>;
  observables: Observable[];
}

interface IncidentRow {
  id: string;
  workspace_id: string;
  title: string;
  description: string;
  severity: Severity;
  status: IncidentStatus;
  assignee_id: string | null;
  tags: string[];
  techniques: string[];
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
  closed_at: Date | null;
}

interface TaskRow { id: string; incident_id: string; title: string; description: string; owner_id: string | null; status: TaskStatus; created_at: Date; updated_at: Date; completed_at: Date | null }
interface ObservableRow { id: string; incident_id: string; type: ObservableType; value: string; fields: string[]; alert_ids: string[]; manual: boolean; note: string; created_at: Date }

function present(r: IncidentRow): Incident {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    title: r.title,
    description: r.description,
    severity: r.severity,
    status: r.status,
    assigneeId: r.assignee_id,
    tags: r.tags,
    techniques: r.techniques,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    closedAt: r.closed_at ? r.closed_at.toISOString() : null,
  };
}

const presentTask = (r: TaskRow): IncidentTask => ({
  id: r.id, incidentId: r.incident_id, title: r.title, description: r.description, ownerId: r.owner_id, status: r.status,
  createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(), completedAt: r.completed_at ? r.completed_at.toISOString() : null,
});

const presentObservable = (r: ObservableRow): Observable => ({
  id: r.id, incidentId: r.incident_id, type: r.type, value: r.value, fields: r.fields, alertIds: r.alert_ids, manual: r.manual, note: r.note, createdAt: r.created_at.toISOString(),
});

export function canTransitionIncident(from: IncidentStatus, to: IncidentStatus): boolean {
  return INCIDENT_TRANSITIONS[from].includes(to);
}

function cleanTags(tags: string[] | undefined): string[] | undefined {
  if (tags === undefined) return undefined;
  const out = [...new Set(tags.map((t) => t.trim()).filter(Boolean))];
  if (out.length > MAX_TAGS || out.some((t) => t.length > 64)) throw new SiqError('SIQ_VALIDATION', `At most ${MAX_TAGS} tags of at most 64 characters each.`);
  return out;
}

function cleanTechniques(techniques: string[] | undefined): string[] | undefined {
  if (techniques === undefined) return undefined;
  const out = [...new Set(techniques.map((t) => t.trim().toUpperCase()))];
  const wrong = out.filter((t) => !TECHNIQUE.test(t));
  if (wrong.length > 0 || out.length > 100) throw new SiqError('SIQ_VALIDATION', `ATT&CK techniques look like T1059 or T1059.001; not: ${wrong.join(', ')}.`, { details: { invalid: wrong } });
  return out;
}

function cleanText(value: string | undefined, name: string, min: number, max: number): string | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (text.length < min || text.length > max) throw new SiqError('SIQ_VALIDATION', `${name} needs ${min} to ${max} characters.`);
  return text;
}

/**
 * Incidents: created from alerts or by hand, worked through INCIDENT_TRANSITIONS, with linked
 * alerts, observables (extracted from the linked alerts' events and added by hand, searchable
 * across incidents), tasks and comments. Every change lands on the incident's append-only
 * timeline in the same transaction as the change.
 */
export class IncidentService {
  constructor(private readonly platform: Platform, private readonly alerts: AlertService) {}

  /** Creates an incident, by hand or from alerts (title and severity then default from them). */
  async create(workspaceId: string, input: CreateIncident, actor: Actor = {}): Promise<IncidentDetail> {
    const alertIds = [...new Set(input.alertIds ?? [])];
    if (alertIds.length > MAX_ALERTS_PER_CALL) throw new SiqError('SIQ_VALIDATION', `At most ${MAX_ALERTS_PER_CALL} alerts at once.`);
    const alerts = await this.loadAlerts(workspaceId, alertIds);
    const title = cleanText(input.title, 'title', 1, 300) ?? (alerts.length === 1 ? alerts[0]!.title.slice(0, 300) : alerts.length > 1 ? `${alerts[0]!.title} and ${alerts.length - 1} more alert${alerts.length > 2 ? 's' : ''}`.slice(0, 300) : undefined);
    if (!title) throw new SiqError('SIQ_VALIDATION', 'An incident needs a title, or alerts to take it from.');
    const severity = input.severity ?? (alerts.length ? alerts.reduce<Severity>((s, a) => (severityRank(a.severity) > severityRank(s) ? a.severity : s), 'informational') : 'medium');
    if (!SEVERITIES.includes(severity)) throw new SiqError('SIQ_VALIDATION', `severity must be one of ${SEVERITIES.join(', ')}.`);
    const tags = cleanTags(input.tags) ?? [];
    const techniques = cleanTechniques(input.techniques ?? techniquesFromTags(alerts.flatMap((a) => a.tags))) ?? [];
    const description = cleanText(input.description, 'description', 0, 20_000) ?? '';
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      if (input.assigneeId) await this.checkMember(tx, workspaceId, input.assigneeId);
      const { rows } = await tx.query<IncidentRow>(
        `INSERT INTO incidents (workspace_id, title, description, severity, assignee_id, tags, techniques, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [workspaceId, title, description, severity, input.assigneeId ?? null, tags, techniques, actor.userId ?? null],
      );
      const row = rows[0]!;
      await this.appendTimeline(tx, workspaceId, row.id, 'created', actor, `incident "${title}" created${alerts.length ? ` from ${alerts.length} alert${alerts.length > 1 ? 's' : ''}` : ''}`, { severity, alertIds, assigneeId: input.assigneeId ?? null, tags, techniques });
      if (input.assigneeId) await this.appendTimeline(tx, workspaceId, row.id, 'assignment', actor, `assigned to ${input.assigneeId}`, { from: null, to: input.assigneeId });
      await this.link(tx, workspaceId, row.id, alerts, actor);
      return this.detail(tx, workspaceId, row);
    });
  }

  async list(workspaceId: string, filters: IncidentFilters = {}): Promise<{ incidents: Incident[]; nextCursor: string | null }> {
    const where = ['workspace_id = $1'];
    const params: unknown[] = [workspaceId];
    const add = (sql: (n: string) => string, value: unknown) => {
      params.push(value);
      where.push(sql(`$${params.length}`));
    };
    if (filters.status?.length) add((n) => `status = ANY(${n}::text[])`, filters.status);
    if (filters.severity?.length) add((n) => `severity = ANY(${n}::text[])`, filters.severity);
    if (filters.assigneeId === null) where.push('assignee_id IS NULL');
    else if (filters.assigneeId !== undefined) add((n) => `assignee_id = ${n}`, filters.assigneeId);
    if (filters.tag) add((n) => `${n} = ANY(tags)`, filters.tag);
    if (filters.q) add((n) => `(title ILIKE ${n} OR description ILIKE ${n})`, `%${escapeLike(filters.q)}%`);
    if (filters.cursor) {
      const c = decodeCursor(filters.cursor);
      params.push(c.time, c.id);
      where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    const limit = Math.min(Math.max(filters.limit ?? 50, 1), 500);
    params.push(limit + 1);
    const sql = `SELECT *, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_ts
      FROM incidents WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`;
    const rows = await withWorkspace(this.platform.db, workspaceId, async (tx) => (await tx.query<IncidentRow & { cursor_ts: string }>(sql, params)).rows);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { incidents: page.map(present), nextCursor: rows.length > limit && last ? encodeCursor(last.cursor_ts, last.id) : null };
  }

  /** One incident with its linked alert ids, tasks and comments; SIQ_NOT_FOUND outside the workspace. */
  async get(workspaceId: string, incidentId: string): Promise<IncidentDetail> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => this.detail(tx, workspaceId, await this.load(tx, workspaceId, incidentId)));
  }

  /** Changes fields, status (INCIDENT_TRANSITIONS, SIQ_INCIDENT_TRANSITION otherwise) and assignee in one transaction. */
  async update(workspaceId: string, incidentId: string, change: IncidentUpdate, actor: Actor = {}): Promise<IncidentDetail> {
    const title = cleanText(change.title, 'title', 1, 300);
    const description = cleanText(change.description, 'description', 0, 20_000);
    const tags = cleanTags(change.tags);
    const techniques = cleanTechniques(change.techniques);
    if (change.severity !== undefined && !SEVERITIES.includes(change.severity)) throw new SiqError('SIQ_VALIDATION', `severity must be one of ${SEVERITIES.join(', ')}.`);
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      let row = (await this.load(tx, workspaceId, incidentId, true)).row;
      const fields: Array<[string, string, unknown, unknown]> = [];
      if (title !== undefined && title !== row.title) fields.push(['title', 'title', row.title, title]);
      if (description !== undefined && description !== row.description) fields.push(['description', 'description', row.description, description]);
      if (change.severity !== undefined && change.severity !== row.severity) fields.push(['severity', 'severity', row.severity, change.severity]);
      if (tags !== undefined && JSON.stringify(tags) !== JSON.stringify(row.tags)) fields.push(['tags', 'tags', row.tags, tags]);
      if (techniques !== undefined && JSON.stringify(techniques) !== JSON.stringify(row.techniques)) fields.push(['techniques', 'techniques', row.techniques, techniques]);
      for (const [name, column, from, to] of fields) {
        row = (await tx.query<IncidentRow>(`UPDATE incidents SET ${column} = $2, updated_at = now() WHERE id = $1 RETURNING *`, [row.id, to])).rows[0]!;
        const summary = name === 'description' ? 'description changed' : `${name} changed to ${Array.isArray(to) ? to.join(', ') || '(none)' : String(to)}`;
        await this.appendTimeline(tx, workspaceId, row.id, name === 'severity' ? 'severity' : 'updated', actor, summary, { field: name, from, to });
      }
      if (change.assigneeId !== undefined && change.assigneeId !== row.assignee_id) {
        if (change.assigneeId !== null) await this.checkMember(tx, workspaceId, change.assigneeId);
        const previous = row.assignee_id;
        row = (await tx.query<IncidentRow>('UPDATE incidents SET assignee_id = $2, updated_at = now() WHERE id = $1 RETURNING *', [row.id, change.assigneeId])).rows[0]!;
        await this.appendTimeline(tx, workspaceId, row.id, 'assignment', actor, change.assigneeId ? `assigned to ${change.assigneeId}` : 'unassigned', { from: previous, to: change.assigneeId });
      }
      if (change.status !== undefined && change.status !== row.status) {
        const from = row.status;
        const to = change.status;
        if (!INCIDENT_STATUSES.includes(to) || !canTransitionIncident(from, to)) {
          throw new SiqError('SIQ_INCIDENT_TRANSITION', `An incident cannot go from ${from} to ${to}. Allowed from ${from}: ${INCIDENT_TRANSITIONS[from].join(', ')}.`, { details: { from, to, allowed: INCIDENT_TRANSITIONS[from] } });
        }
        row = (await tx.query<IncidentRow>(
          "UPDATE incidents SET status = $2, closed_at = CASE WHEN $2 = 'closed' THEN now() ELSE NULL END, updated_at = now() WHERE id = $1 RETURNING *",
          [row.id, to],
        )).rows[0]!;
        await this.appendTimeline(tx, workspaceId, row.id, 'status', actor, `status ${from} → ${to}`, { from, to });
      }
      return this.detail(tx, workspaceId, row);
    });
  }

  /** Links alerts (already linked ones are skipped) and extracts observables from their events. */
  async linkAlerts(workspaceId: string, incidentId: string, alertIds: string[], actor: Actor = {}): Promise<{ linked: string[]; observablesAdded: number }> {
    const ids = [...new Set(alertIds)];
    if (ids.length === 0 || ids.length > MAX_ALERTS_PER_CALL) throw new SiqError('SIQ_VALIDATION', `Link 1 to ${MAX_ALERTS_PER_CALL} alerts at once.`);
    const alerts = await this.loadAlerts(workspaceId, ids);
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const row = await this.load(tx, workspaceId, incidentId, true);
      const result = await this.link(tx, workspaceId, row.id, alerts, actor);
      if (result.linked.length) await tx.query('UPDATE incidents SET updated_at = now() WHERE id = $1', [row.id]);
      return result;
    });
  }

  /** Unlinks an alert; observables only that alert's events carried (and nobody added by hand) go with it. */
  async unlinkAlert(workspaceId: string, incidentId: string, alertId: string, actor: Actor = {}): Promise<{ observablesRemoved: number }> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const row = await this.load(tx, workspaceId, incidentId, true);
      if (!isUuid(alertId)) throw new SiqError('SIQ_NOT_FOUND', 'That alert is not linked to this incident.');
      const deleted = await tx.query('DELETE FROM incident_alerts WHERE incident_id = $1 AND alert_id = $2', [row.id, alertId]);
      if (deleted.rowCount === 0) throw new SiqError('SIQ_NOT_FOUND', 'That alert is not linked to this incident.');
      await tx.query('UPDATE incident_observables SET alert_ids = array_remove(alert_ids, $2::uuid) WHERE incident_id = $1 AND $2::uuid = ANY(alert_ids)', [row.id, alertId]);
      const removed = await tx.query("DELETE FROM incident_observables WHERE incident_id = $1 AND NOT manual AND alert_ids = '{}'", [row.id]);
      await tx.query('UPDATE incidents SET updated_at = now() WHERE id = $1', [row.id]);
      await this.appendTimeline(tx, workspaceId, row.id, 'alert_unlinked', actor, `alert ${alertId} unlinked`, { alertId, observablesRemoved: removed.rowCount });
      return { observablesRemoved: removed.rowCount };
    });
  }

  async observables(workspaceId: string, incidentId: string): Promise<Observable[]> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      await this.load(tx, workspaceId, incidentId);
      return this.observablesOf(tx, workspaceId, incidentId);
    });
  }

  /** Adds an observable by hand (or marks an extracted one as confirmed by a person). */
  async addObservable(workspaceId: string, incidentId: string, input: { type: ObservableType; value: string; note?: string }, actor: Actor = {}): Promise<Observable> {
    if (!OBSERVABLE_TYPES.includes(input.type)) throw new SiqError('SIQ_VALIDATION', `type must be one of ${OBSERVABLE_TYPES.join(', ')}.`);
    const value = normaliseObservable(input.type, input.value);
    if (value === null) throw new SiqError('SIQ_VALIDATION', `That is not a valid ${input.type} observable.`);
    const note = (input.note ?? '').trim().slice(0, 2000);
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const row = await this.load(tx, workspaceId, incidentId, true);
      const { rows } = await tx.query<ObservableRow>(
        `INSERT INTO incident_observables (workspace_id, incident_id, type, value, norm, manual, note) VALUES ($1, $2, $3, $4, $5, true, $6)
         ON CONFLICT (incident_id, type, norm) DO UPDATE SET manual = true, note = CASE WHEN EXCLUDED.note = '' THEN incident_observables.note ELSE EXCLUDED.note END
         RETURNING *`,
        [workspaceId, row.id, input.type, value, value.toLowerCase(), note],
      );
      await this.appendTimeline(tx, workspaceId, row.id, 'observable_added', actor, `${input.type} ${value} added`, { observableId: rows[0]!.id, type: input.type, value });
      return presentObservable(rows[0]!);
    });
  }

  /** Where else was this seen: the workspace's incidents that have the observable (case-insensitive, exact value). */
  async searchObservables(workspaceId: string, query: { type?: ObservableType; value: string; limit?: number }): Promise<ObservableHit[]> {
    const raw = query.value.trim();
    if (!raw) throw new SiqError('SIQ_VALIDATION', 'value is required.');
    const norm = (query.type ? normaliseObservable(query.type, raw) ?? raw : raw).toLowerCase();
    const params: unknown[] = [workspaceId, norm];
    let typeFilter = '';
    if (query.type) {
      params.push(query.type);
      typeFilter = ' AND o.type = $3';
    }
    params.push(Math.min(Math.max(query.limit ?? 100, 1), 1000));
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<ObservableRow & { title: string; status: IncidentStatus; severity: Severity }>(
        `SELECT o.*, i.title, i.status, i.severity FROM incident_observables o JOIN incidents i ON i.id = o.incident_id
         WHERE o.workspace_id = $1 AND o.norm = $2${typeFilter} ORDER BY i.created_at DESC, o.id LIMIT $${params.length}`,
        params,
      );
      return rows.map((r) => ({
        incidentId: r.incident_id, incidentTitle: r.title, incidentStatus: r.status, incidentSeverity: r.severity,
        observableId: r.id, type: r.type, value: r.value, alertIds: r.alert_ids, manual: r.manual, createdAt: r.created_at.toISOString(),
      }));
    });
  }

  async addTask(workspaceId: string, incidentId: string, input: { title: string; description?: string; ownerId?: string | null; status?: TaskStatus }, actor: Actor = {}): Promise<IncidentTask> {
    const title = cleanText(input.title, 'title', 1, 300)!;
    const description = cleanText(input.description, 'description', 0, 10_000) ?? '';
    const status = input.status ?? 'todo';
    if (!TASK_STATUSES.includes(status)) throw new SiqError('SIQ_VALIDATION', `status must be one of ${TASK_STATUSES.join(', ')}.`);
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const row = await this.load(tx, workspaceId, incidentId, true);
      if (input.ownerId) await this.checkMember(tx, workspaceId, input.ownerId);
      const { rows } = await tx.query<TaskRow>(
        `INSERT INTO incident_tasks (workspace_id, incident_id, title, description, owner_id, status, completed_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 IN ('done', 'cancelled') THEN now() END) RETURNING *`,
        [workspaceId, row.id, title, description, input.ownerId ?? null, status],
      );
      const task = rows[0]!;
      await this.appendTimeline(tx, workspaceId, row.id, 'task_created', actor, `task "${title}" created`, { taskId: task.id, ownerId: task.owner_id, status });
      return presentTask(task);
    });
  }

  async updateTask(workspaceId: string, incidentId: string, taskId: string, change: { title?: string; description?: string; ownerId?: string | null; status?: TaskStatus }, actor: Actor = {}): Promise<IncidentTask> {
    const title = cleanText(change.title, 'title', 1, 300);
    const description = cleanText(change.description, 'description', 0, 10_000);
    if (change.status !== undefined && !TASK_STATUSES.includes(change.status)) throw new SiqError('SIQ_VALIDATION', `status must be one of ${TASK_STATUSES.join(', ')}.`);
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const incident = await this.load(tx, workspaceId, incidentId, true);
      if (!isUuid(taskId)) throw new SiqError('SIQ_NOT_FOUND', 'No such task.');
      const current = (await tx.query<TaskRow>('SELECT * FROM incident_tasks WHERE workspace_id = $1 AND incident_id = $2 AND id = $3 FOR UPDATE', [workspaceId, incident.id, taskId])).rows[0];
      if (!current) throw new SiqError('SIQ_NOT_FOUND', 'No such task.');
      if (change.ownerId) await this.checkMember(tx, workspaceId, change.ownerId);
      const { rows } = await tx.query<TaskRow>(
        `UPDATE incident_tasks SET title = $2, description = $3, owner_id = $4, status = $5,
           completed_at = CASE WHEN $5 IN ('done', 'cancelled') THEN coalesce(completed_at, now()) ELSE NULL END, updated_at = now()
         WHERE id = $1 RETURNING *`,
        [current.id, title ?? current.title, description ?? current.description, change.ownerId === undefined ? current.owner_id : change.ownerId, change.status ?? current.status],
      );
      const task = rows[0]!;
      const changed: Record<string, { from: unknown; to: unknown }> = {};
      for (const [name, from, to] of [['title', current.title, task.title], ['description', current.description, task.description], ['ownerId', current.owner_id, task.owner_id], ['status', current.status, task.status]] as const) {
        if (from !== to) changed[name] = { from, to };
      }
      if (Object.keys(changed).length > 0) {
        await this.appendTimeline(tx, workspaceId, incident.id, 'task_updated', actor, `task "${task.title}": ${Object.keys(changed).map((k) => (k === 'status' ? `status ${task.status}` : k === 'ownerId' ? (task.owner_id ? `owner ${task.owner_id}` : 'no owner') : `${k} changed`)).join(', ')}`, { taskId: task.id, changes: changed });
      }
      return presentTask(task);
    });
  }

  async comment(workspaceId: string, incidentId: string, text: string, actor: Actor = {}): Promise<IncidentComment> {
    const body = cleanText(text, 'A comment', 1, 10_000)!;
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const row = await this.load(tx, workspaceId, incidentId, true);
      const { rows } = await tx.query<{ id: string; created_at: Date }>(
        'INSERT INTO incident_comments (workspace_id, incident_id, author_user_id, author_api_key_id, text) VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at',
        [workspaceId, row.id, actor.userId ?? null, actor.apiKeyId ?? null, body],
      );
      const comment = rows[0]!;
      await this.appendTimeline(tx, workspaceId, row.id, 'comment', actor, 'comment added', { commentId: comment.id, text: body });
      const email = actor.userId ? (await tx.query<{ email: string }>('SELECT email FROM users WHERE id = $1', [actor.userId])).rows[0]?.email ?? null : null;
      return { id: comment.id, incidentId: row.id, authorUserId: actor.userId ?? null, authorEmail: email, authorApiKeyId: actor.apiKeyId ?? null, text: body, createdAt: comment.created_at.toISOString() };
    });
  }

  /** The incident's timeline, oldest first. */
  async timeline(workspaceId: string, incidentId: string): Promise<TimelineEntry[]> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      await this.load(tx, workspaceId, incidentId);
      return this.timelineOf(tx, workspaceId, incidentId);
    });
  }

  /** Everything of an incident an export holds, except evidence: the incident, timeline, linked alerts, their events, observables. */
  async exportData(workspaceId: string, incidentId: string): Promise<IncidentExport> {
    const base = await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const row = await this.load(tx, workspaceId, incidentId);
      return { incident: await this.detail(tx, workspaceId, row), timeline: await this.timelineOf(tx, workspaceId, row.id), observables: await this.observablesOf(tx, workspaceId, row.id) };
    });
    const alerts: Alert[] = [];
    for (const alertId of base.incident.alertIds) {
      try {
        const { comments: _comments, ...alert } = await this.alerts.get(workspaceId, alertId);
        alerts.push(alert);
      } catch (err) {
        if (!(err instanceof SiqError && err.code === 'SIQ_NOT_FOUND')) throw err;
      }
    }
    const events = await withWorkspace(this.platform.db, workspaceId, (tx) => this.eventsOf(tx, workspaceId, alerts.flatMap((a) => a.eventRefs)));
    return { ...base, alerts, events: events.map((e) => ({ id: e.id, ts: e.ts.toISOString(), doc: e.doc })) };
  }

  /**
   * Appends an entry to an incident's timeline inside the caller's transaction (the evidence
   * module records evidence changes here too). The table refuses UPDATE and DELETE.
   */
  async appendTimeline(tx: Queryable, workspaceId: string, incidentId: string, action: string, actor: Actor, summary: string, details: Record<string, unknown> = {}): Promise<void> {
    await tx.query(
      'INSERT INTO incident_timeline (workspace_id, incident_id, action, actor_user_id, actor_api_key_id, summary, details) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [workspaceId, incidentId, action, actor.userId ?? null, actor.apiKeyId ?? null, summary, JSON.stringify(details)],
    );
  }

  /** Loads an incident inside a workspace transaction (optionally locking it); SIQ_NOT_FOUND otherwise. */
  async load(tx: Queryable, workspaceId: string, incidentId: string, forUpdate = false): Promise<Incident & { row: IncidentRow }> {
    if (!isUuid(incidentId)) throw new SiqError('SIQ_NOT_FOUND', 'No such incident.');
    const { rows } = await tx.query<IncidentRow>(`SELECT * FROM incidents WHERE workspace_id = $1 AND id = $2${forUpdate ? ' FOR UPDATE' : ''}`, [workspaceId, incidentId]);
    if (!rows[0]) throw new SiqError('SIQ_NOT_FOUND', 'No such incident.');
    return { ...present(rows[0]), row: rows[0] };
  }

  private async loadAlerts(workspaceId: string, alertIds: string[]): Promise<Alert[]> {
    const out: Alert[] = [];
    for (const id of alertIds) {
      try {
        out.push(await this.alerts.get(workspaceId, id));
      } catch (err) {
        if (err instanceof SiqError && err.code === 'SIQ_NOT_FOUND') throw new SiqError('SIQ_NOT_FOUND', `No such alert: ${id}.`, { details: { alertId: id } });
        throw err;
      }
    }
    return out;
  }

  private async link(tx: Queryable, workspaceId: string, incidentId: string, alerts: Alert[], actor: Actor): Promise<{ linked: string[]; observablesAdded: number }> {
    const linked: string[] = [];
    let observablesAdded = 0;
    for (const alert of alerts) {
      const inserted = await tx.query('INSERT INTO incident_alerts (workspace_id, incident_id, alert_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [workspaceId, incidentId, alert.id]);
      if (inserted.rowCount === 0) continue;
      linked.push(alert.id);
      const found = new Map<string, { type: ObservableType; value: string; fields: Set<string> }>();
      for (const event of await this.eventsOf(tx, workspaceId, alert.eventRefs)) {
        for (const o of extractObservables(event.doc)) {
          const key = `${o.type}\n${o.value.toLowerCase()}`;
          const entry = found.get(key) ?? { type: o.type, value: o.value, fields: new Set<string>() };
          entry.fields.add(o.field);
          found.set(key, entry);
        }
      }
      let added = 0;
      for (const o of found.values()) {
        const { rows } = await tx.query<{ added: boolean }>(
          `INSERT INTO incident_observables (workspace_id, incident_id, type, value, norm, fields, alert_ids) VALUES ($1, $2, $3, $4, $5, $6, ARRAY[$7::uuid])
           ON CONFLICT (incident_id, type, norm) DO UPDATE SET
             fields = ARRAY(SELECT DISTINCT unnest(incident_observables.fields || EXCLUDED.fields)),
             alert_ids = CASE WHEN $7::uuid = ANY(incident_observables.alert_ids) THEN incident_observables.alert_ids ELSE incident_observables.alert_ids || $7::uuid END
           RETURNING (xmax = 0) AS added`,
          [workspaceId, incidentId, o.type, o.value, o.value.toLowerCase(), [...o.fields].sort(), alert.id],
        );
        if (rows[0]?.added) added++;
      }
      observablesAdded += added;
      await this.appendTimeline(tx, workspaceId, incidentId, 'alert_linked', actor, `alert "${alert.title}" linked${added ? `, ${added} observable${added > 1 ? 's' : ''} extracted` : ''}`, { alertId: alert.id, observablesAdded: added });
    }
    return { linked, observablesAdded };
  }

  private async eventsOf(tx: Queryable, workspaceId: string, refs: EventRef[]): Promise<Array<{ id: string; ts: Date; doc: Record<string, unknown> }>> {
    const valid = refs.filter((r) => isUuid(r.id) && !Number.isNaN(Date.parse(r.ts)));
    if (valid.length === 0) return [];
    const seen = new Set<string>();
    const unique = valid.filter((r) => (seen.has(r.id) ? false : (seen.add(r.id), true)));
    const { rows } = await tx.query<{ id: string; ts: Date; doc: Record<string, unknown> }>(
      `SELECT e.id, e.ts, ${eventDocSql('e')} AS doc FROM unnest($2::uuid[], $3::timestamptz[]) AS r(id, ts)
       JOIN events e ON e.workspace_id = $1 AND e.id = r.id AND e.ts = r.ts ORDER BY e.ts, e.id`,
      [workspaceId, unique.map((r) => r.id), unique.map((r) => new Date(r.ts))],
    );
    return rows;
  }

  private async checkMember(tx: Queryable, workspaceId: string, userId: string): Promise<void> {
    const member = isUuid(userId) && (await tx.query('SELECT 1 FROM workspace_members WHERE workspace_id = $1 AND user_id = $2', [workspaceId, userId])).rows.length > 0;
    if (!member) throw new SiqError('SIQ_INCIDENT_ASSIGNEE');
  }

  private async detail(tx: Queryable, workspaceId: string, row: IncidentRow | (Incident & { row: IncidentRow })): Promise<IncidentDetail> {
    const r = 'row' in row ? row.row : row;
    const alertIds = (await tx.query<{ alert_id: string }>('SELECT alert_id FROM incident_alerts WHERE workspace_id = $1 AND incident_id = $2 ORDER BY linked_at, alert_id', [workspaceId, r.id])).rows.map((x) => x.alert_id);
    const tasks = (await tx.query<TaskRow>('SELECT * FROM incident_tasks WHERE workspace_id = $1 AND incident_id = $2 ORDER BY created_at, id', [workspaceId, r.id])).rows.map(presentTask);
    const comments = (await tx.query<{ id: string; incident_id: string; author_user_id: string | null; email: string | null; author_api_key_id: string | null; text: string; created_at: Date }>(
      'SELECT c.id, c.incident_id, c.author_user_id, u.email, c.author_api_key_id, c.text, c.created_at FROM incident_comments c LEFT JOIN users u ON u.id = c.author_user_id WHERE c.workspace_id = $1 AND c.incident_id = $2 ORDER BY c.created_at, c.id',
      [workspaceId, r.id],
    )).rows.map((c) => ({ id: c.id, incidentId: c.incident_id, authorUserId: c.author_user_id, authorEmail: c.email, authorApiKeyId: c.author_api_key_id, text: c.text, createdAt: c.created_at.toISOString() }));
    return { ...present(r), alertIds, tasks, comments };
  }

  private async observablesOf(tx: Queryable, workspaceId: string, incidentId: string): Promise<Observable[]> {
    const { rows } = await tx.query<ObservableRow>('SELECT * FROM incident_observables WHERE workspace_id = $1 AND incident_id = $2 ORDER BY type, norm', [workspaceId, incidentId]);
    return rows.map(presentObservable);
  }

  private async timelineOf(tx: Queryable, workspaceId: string, incidentId: string): Promise<TimelineEntry[]> {
    const { rows } = await tx.query<{ id: number | string; incident_id: string; action: string; actor_user_id: string | null; email: string | null; actor_api_key_id: string | null; summary: string; details: Record<string, unknown>; created_at: Date }>(
      'SELECT t.*, u.email FROM incident_timeline t LEFT JOIN users u ON u.id = t.actor_user_id WHERE t.workspace_id = $1 AND t.incident_id = $2 ORDER BY t.id',
      [workspaceId, incidentId],
    );
    return rows.map((r) => ({ id: Number(r.id), incidentId: r.incident_id, action: r.action, actorUserId: r.actor_user_id, actorEmail: r.email, actorApiKeyId: r.actor_api_key_id, summary: r.summary, details: r.details, at: r.created_at.toISOString() }));
  }
}

/** ATT&CK technique ids from Sigma-style tags (`attack.t1059.001` → T1059.001). */
export function techniquesFromTags(tags: string[]): string[] {
  const out = new Set<string>();
  for (const tag of tags) {
    const m = /^attack\.(t\d{4}(?:\.\d{3})?)$/i.exec(tag.trim());
    if (m) out.add(m[1]!.toUpperCase());
  }
  return [...out];
}
