import { createHash } from 'node:crypto';
import { Counter } from 'prom-client';
import { SiqError } from '../../errors.js';
import type { Platform } from '../../platform/index.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import type { Queryable } from '../../platform/db/types.js';
import type { AlertService } from '../alerts/service.js';
import type { Detection, EventRef, Severity } from '../alerts/types.js';
import { eventDocSql } from '../events/stored-doc.js';
import { DetectionEngine, type EngineRule } from './engine.js';
import { EventView, loadMapping, type Mapping } from './mapping.js';
import { importYamlText, type ImportResult, type RejectedRule } from './rules/import.js';
import { parseSigmaYaml, type SigmaCorrelationRule, type SigmaDocument } from './sigma/rule.js';
import type { CompileContext } from './sigma/values.js';
import { BUILTIN_THRESHOLDS, checkThreshold, compileThreshold, type CompiledThreshold, type ThresholdDefinition } from './thresholds.js';
import { Windows } from './windows.js';

/** An event as detection sees it: stored id and time, and the flat document. */
export interface DetectableEvent {
  id: string;
  ts: Date;
  doc: Record<string, unknown>;
}

export interface RuleRow {
  id: string;
  workspace_id: string;
  kind: 'sigma' | 'threshold';
  doc_kind: 'rule' | 'correlation' | 'filter' | 'threshold';
  sigma_id: string | null;
  name: string | null;
  builtin: string | null;
  title: string;
  description: string;
  level: Severity;
  severity_override: Severity | null;
  status: string | null;
  tags: string[];
  logsource: Record<string, string>;
  enabled: boolean;
  version: number;
  source: string;
  created_at: Date;
  updated_at: Date;
}

export interface ImportReport {
  files: number;
  created: number;
  updated: number;
  unchanged: number;
  rejected: RejectedRule[];
}

interface ThresholdRule {
  row: RuleRow;
  compiled: CompiledThreshold;
}

/** Everything one workspace's events are checked against, compiled once and cached. */
interface WorkspaceDetection {
  engine: DetectionEngine;
  thresholds: ThresholdRule[];
  rows: Map<string, RuleRow>;
  /** Rules that failed to compile at load (a placeholder removed since import, …). */
  broken: Array<{ id: string; title: string; message: string }>;
}

const RULES_CHANGED = 'detect:rules-changed';
const severityOf = (row: RuleRow): Severity => row.severity_override ?? row.level;

export function publicRule(row: RuleRow, withSource = false) {
  return {
    id: row.id,
    kind: row.kind,
    type: row.doc_kind,
    sigmaId: row.sigma_id,
    name: row.name,
    builtin: row.builtin,
    title: row.title,
    description: row.description,
    level: row.level,
    severity: severityOf(row),
    severityOverride: row.severity_override,
    status: row.status,
    tags: row.tags,
    logsource: row.logsource,
    enabled: row.enabled,
    version: row.version,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    ...(withSource ? { source: row.source } : {}),
  };
}

/**
 * Detection: rule management per workspace, and the evaluation of events against the
 * workspace's rules as they are committed (streaming) or over stored events (retro-hunt).
 * Sigma rules and threshold rules raise alerts through the alert service; correlation and
 * threshold windows live in the platform cache, shared between processes.
 */
export class DetectionService {
  private readonly workspaces = new Map<string, Promise<WorkspaceDetection>>();
  private readonly windows: Windows;
  readonly mapping: Mapping;
  private subscribed: Promise<unknown> | null = null;
  private queue: Array<{ workspaceId: string; events: DetectableEvent[] }> = [];
  private queued = 0;
  private running: Promise<void> | null = null;
  private readonly metric: Counter<'outcome'>;

  constructor(private readonly platform: Platform, private readonly alerts: AlertService, options: { mapping?: Mapping } = {}) {
    this.mapping = options.mapping ?? loadMapping(platform.config.detection.logsourcesFile);
    this.windows = new Windows(platform.cache, 'detect:win:');
    const registry = platform.metrics.registry;
    this.metric = (registry.getSingleMetric('siq_detection_events_total') as Counter<'outcome'> | undefined)
      ?? new Counter({ name: 'siq_detection_events_total', help: 'Events checked by detection, and detections raised.', labelNames: ['outcome'], registers: [registry] });
  }

  // ---------------------------------------------------------------- rule management

  private async placeholders(tx: Queryable): Promise<Record<string, string[]>> {
    const { rows } = await tx.query<{ name: string; values: string[] }>('SELECT name, "values" FROM detection_placeholders');
    return Object.fromEntries(rows.map((r) => [r.name, r.values]));
  }

  async compileContext(workspaceId: string): Promise<CompileContext> {
    return { placeholders: await withWorkspace(this.platform.db, workspaceId, (tx) => this.placeholders(tx)) };
  }

  /** Stores imported Sigma documents: new ones are created, known ids get a new version when changed. */
  async storeImport(workspaceId: string, result: ImportResult, actorId: string | null): Promise<ImportReport> {
    const report: ImportReport = { files: result.files, created: 0, updated: 0, unchanged: 0, rejected: result.rejected };
    await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      for (const rule of result.rules) {
        const outcome = await this.upsertSigma(tx, workspaceId, rule.doc, rule.source, actorId);
        report[outcome]++;
      }
    });
    await this.invalidate(workspaceId);
    return report;
  }

  /** Imports one YAML text (one or more documents). */
  async importYaml(workspaceId: string, file: string, text: string, actorId: string | null): Promise<ImportReport> {
    const ctx = await this.compileContext(workspaceId);
    return this.storeImport(workspaceId, importYamlText(file, text, ctx), actorId);
  }

  private async upsertSigma(tx: Queryable, workspaceId: string, doc: SigmaDocument, source: string, actorId: string | null): Promise<'created' | 'updated' | 'unchanged'> {
    const logsource = doc.kind === 'correlation' ? {} : doc.logsource;
    if (doc.id) {
      const { rows } = await tx.query<{ id: string; source: string; version: number }>('SELECT id, source, version FROM detection_rules WHERE workspace_id = $1 AND sigma_id = $2 FOR UPDATE', [workspaceId, doc.id]);
      const existing = rows[0];
      if (existing) {
        if (existing.source === source) return 'unchanged';
        const version = existing.version + 1;
        await tx.query(
          `UPDATE detection_rules SET doc_kind = $2, name = $3, title = $4, description = $5, level = $6, status = $7, tags = $8, logsource = $9, source = $10, version = $11, updated_at = now() WHERE id = $1`,
          [existing.id, doc.kind, doc.name, doc.title, doc.description, doc.level, doc.status, doc.tags, JSON.stringify(logsource), source, version],
        );
        await tx.query('INSERT INTO detection_rule_versions (workspace_id, rule_id, version, source, changed_by) VALUES ($1, $2, $3, $4, $5)', [workspaceId, existing.id, version, source, actorId]);
        return 'updated';
      }
    }
    const { rows } = await tx.query<{ id: string }>(
      `INSERT INTO detection_rules (workspace_id, kind, doc_kind, sigma_id, name, title, description, level, status, tags, logsource, source)
       VALUES ($1, 'sigma', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
      [workspaceId, doc.kind, doc.id, doc.name, doc.title, doc.description, doc.level, doc.status, doc.tags, JSON.stringify(logsource), source],
    );
    await tx.query('INSERT INTO detection_rule_versions (workspace_id, rule_id, version, source, changed_by) VALUES ($1, $2, 1, $3, $4)', [workspaceId, rows[0]!.id, source, actorId]);
    return 'created';
  }

  async createThreshold(workspaceId: string, definition: ThresholdDefinition, actorId: string | null): Promise<RuleRow> {
    checkThreshold(definition);
    const row = await withWorkspace(this.platform.db, workspaceId, (tx) => this.insertThreshold(tx, workspaceId, definition, null, actorId));
    await this.invalidate(workspaceId);
    return row;
  }

  private async insertThreshold(tx: Queryable, workspaceId: string, d: ThresholdDefinition, builtin: string | null, actorId: string | null): Promise<RuleRow> {
    const source = JSON.stringify(d, null, 2);
    // Two processes adding the built-ins at once: the second one's insert does nothing.
    const { rows } = await tx.query<RuleRow>(
      `INSERT INTO detection_rules (workspace_id, kind, doc_kind, builtin, title, description, level, tags, source)
       VALUES ($1, 'threshold', 'threshold', $2, $3, $4, $5, $6, $7)
       ON CONFLICT (workspace_id, builtin) WHERE builtin IS NOT NULL DO NOTHING RETURNING *`,
      [workspaceId, builtin, d.title, d.description ?? '', d.level ?? 'medium', d.tags ?? [], source],
    );
    if (!rows[0]) return (await tx.query<RuleRow>('SELECT * FROM detection_rules WHERE workspace_id = $1 AND builtin = $2', [workspaceId, builtin])).rows[0]!;
    await tx.query('INSERT INTO detection_rule_versions (workspace_id, rule_id, version, source, changed_by) VALUES ($1, $2, 1, $3, $4)', [workspaceId, rows[0].id, source, actorId]);
    return rows[0];
  }

  /** Adds the built-in threshold rules a workspace does not have yet (once; disabling one keeps it). */
  private async ensureBuiltins(tx: Queryable, workspaceId: string): Promise<void> {
    const { rows } = await tx.query<{ builtin: string }>('SELECT builtin FROM detection_rules WHERE workspace_id = $1 AND builtin IS NOT NULL', [workspaceId]);
    const have = new Set(rows.map((r) => r.builtin));
    for (const [name, d] of Object.entries(BUILTIN_THRESHOLDS)) {
      if (!have.has(name)) await this.insertThreshold(tx, workspaceId, d, name, null);
    }
  }

  async list(workspaceId: string, filters: { enabled?: boolean; kind?: string; tag?: string; q?: string; limit?: number; offset?: number } = {}) {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      await this.ensureBuiltins(tx, workspaceId);
      const where = ['workspace_id = $1'];
      const params: unknown[] = [workspaceId];
      if (filters.enabled !== undefined) where.push(`enabled = $${params.push(filters.enabled)}`);
      if (filters.kind) where.push(`kind = $${params.push(filters.kind)}`);
      if (filters.tag) where.push(`$${params.push(filters.tag.toLowerCase())} = ANY(tags)`);
      if (filters.q) where.push(`title ILIKE $${params.push(`%${filters.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`)}`);
      const limit = Math.min(Math.max(filters.limit ?? 100, 1), 1000);
      const total = await tx.query<{ n: string }>(`SELECT count(*) AS n FROM detection_rules WHERE ${where.join(' AND ')}`, params);
      const { rows } = await tx.query<RuleRow>(`SELECT * FROM detection_rules WHERE ${where.join(' AND ')} ORDER BY title, id LIMIT $${params.push(limit)} OFFSET $${params.push(Math.max(filters.offset ?? 0, 0))}`, params);
      return { total: Number(total.rows[0]!.n), rules: rows.map((r) => publicRule(r)) };
    });
  }

  async get(workspaceId: string, ruleId: string): Promise<RuleRow> {
    const row = await withWorkspace(this.platform.db, workspaceId, async (tx) => (await tx.query<RuleRow>('SELECT * FROM detection_rules WHERE workspace_id = $1 AND id = $2', [workspaceId, ruleId])).rows[0]);
    if (!row) throw new SiqError('SIQ_NOT_FOUND', 'No such rule in this workspace.');
    return row;
  }

  async versions(workspaceId: string, ruleId: string) {
    await this.get(workspaceId, ruleId);
    return withWorkspace(this.platform.db, workspaceId, async (tx) => (await tx.query<{ version: number; source: string; changed_by: string | null; created_at: Date }>(
      'SELECT version, source, changed_by, created_at FROM detection_rule_versions WHERE workspace_id = $1 AND rule_id = $2 ORDER BY version DESC', [workspaceId, ruleId])).rows.map((v) => ({ version: v.version, source: v.source, changedBy: v.changed_by, createdAt: v.created_at.toISOString() })));
  }

  /** Enables/disables, overrides the severity, replaces tags, or (thresholds) replaces the definition. */
  async update(workspaceId: string, ruleId: string, patch: { enabled?: boolean; severity?: Severity | null; tags?: string[]; threshold?: ThresholdDefinition }, actorId: string | null): Promise<RuleRow> {
    const current = await this.get(workspaceId, ruleId);
    const row = await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      if (patch.threshold !== undefined) {
        if (current.kind !== 'threshold') throw new SiqError('SIQ_RULE_INVALID', 'Only threshold rules take a threshold definition; import a new version of a Sigma rule instead.', { details: { reason: 'not_a_threshold' } });
        checkThreshold(patch.threshold);
        const source = JSON.stringify(patch.threshold, null, 2);
        const version = current.version + 1;
        await tx.query('UPDATE detection_rules SET source = $2, title = $3, description = $4, level = $5, version = $6, updated_at = now() WHERE id = $1', [ruleId, source, patch.threshold.title, patch.threshold.description ?? '', patch.threshold.level ?? 'medium', version]);
        await tx.query('INSERT INTO detection_rule_versions (workspace_id, rule_id, version, source, changed_by) VALUES ($1, $2, $3, $4, $5)', [workspaceId, ruleId, version, source, actorId]);
      }
      const sets: string[] = [];
      const params: unknown[] = [ruleId];
      if (patch.enabled !== undefined) sets.push(`enabled = $${params.push(patch.enabled)}`);
      if (patch.severity !== undefined) sets.push(`severity_override = $${params.push(patch.severity)}`);
      if (patch.tags !== undefined) sets.push(`tags = $${params.push(patch.tags.map((t) => t.toLowerCase()))}`);
      if (sets.length > 0) await tx.query(`UPDATE detection_rules SET ${sets.join(', ')}, updated_at = now() WHERE id = $1`, params);
      return (await tx.query<RuleRow>('SELECT * FROM detection_rules WHERE id = $1', [ruleId])).rows[0]!;
    });
    await this.invalidate(workspaceId);
    return row;
  }

  async delete(workspaceId: string, ruleId: string): Promise<void> {
    const row = await this.get(workspaceId, ruleId);
    if (row.builtin) throw new SiqError('SIQ_CONFLICT', 'Built-in rules cannot be deleted; disable it instead.');
    await withWorkspace(this.platform.db, workspaceId, (tx) => tx.query('DELETE FROM detection_rules WHERE workspace_id = $1 AND id = $2', [workspaceId, ruleId]));
    await this.invalidate(workspaceId);
  }

  async listPlaceholders(workspaceId: string): Promise<Record<string, string[]>> {
    return withWorkspace(this.platform.db, workspaceId, (tx) => this.placeholders(tx));
  }

  async setPlaceholder(workspaceId: string, name: string, values: string[]): Promise<void> {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new SiqError('SIQ_VALIDATION', 'Placeholder names are 1–64 letters, digits, _ . or -.');
    await withWorkspace(this.platform.db, workspaceId, (tx) => tx.query(
      `INSERT INTO detection_placeholders (workspace_id, name, "values") VALUES ($1, $2, $3)
       ON CONFLICT (workspace_id, name) DO UPDATE SET "values" = EXCLUDED."values", updated_at = now()`, [workspaceId, name, values]));
    await this.invalidate(workspaceId);
  }

  /** Drops the compiled rules of a workspace here and in every other process. */
  async invalidate(workspaceId: string): Promise<void> {
    this.workspaces.delete(workspaceId);
    await this.platform.cache.publish(RULES_CHANGED, workspaceId).catch(() => undefined);
  }

  // ---------------------------------------------------------------- compiled rules

  private listen(): Promise<unknown> {
    this.subscribed ??= this.platform.cache.subscribe(RULES_CHANGED, (ws) => this.workspaces.delete(ws)).catch((err: unknown) => {
      this.platform.logger.warn({ component: 'detect', err }, 'cannot follow rule changes of other processes');
      this.subscribed = null;
    });
    return this.subscribed;
  }

  /** The compiled rules of a workspace (cached until a rule changes). */
  rulesFor(workspaceId: string): Promise<WorkspaceDetection> {
    let cached = this.workspaces.get(workspaceId);
    if (!cached) {
      cached = this.load(workspaceId);
      this.workspaces.set(workspaceId, cached);
      cached.catch(() => this.workspaces.get(workspaceId) === cached && this.workspaces.delete(workspaceId));
    }
    return cached;
  }

  private async load(workspaceId: string): Promise<WorkspaceDetection> {
    await this.listen();
    const { rows, placeholders } = await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      await this.ensureBuiltins(tx, workspaceId);
      return { rows: (await tx.query<RuleRow>('SELECT * FROM detection_rules WHERE workspace_id = $1 AND enabled', [workspaceId])).rows, placeholders: await this.placeholders(tx) };
    });
    return this.compile(rows, { placeholders });
  }

  /** Compiles stored rules (used for streaming and, with one rule, for retro-hunts). */
  compile(rows: RuleRow[], ctx: CompileContext): WorkspaceDetection {
    const engine = new DetectionEngine(this.mapping);
    const entries: EngineRule[] = [];
    const thresholds: ThresholdRule[] = [];
    const broken: WorkspaceDetection['broken'] = [];
    for (const row of rows) {
      try {
        if (row.kind === 'threshold') {
          thresholds.push({ row, compiled: compileThreshold(JSON.parse(row.source)) });
          continue;
        }
        const parsed = parseSigmaYaml(row.source, engine.compileContext(ctx))[0];
        if (!parsed) throw new Error('the stored rule is empty');
        if (!parsed.ok) throw new Error(parsed.message);
        entries.push({ key: row.id, doc: parsed.rule, severity: severityOf(row) });
      } catch (err) {
        broken.push({ id: row.id, title: row.title, message: (err as Error).message });
      }
    }
    engine.load(entries);
    if (broken.length > 0) this.platform.logger.warn({ component: 'detect', broken: broken.length }, 'some stored rules no longer compile; they are skipped');
    return { engine, thresholds, rows: new Map(rows.map((r) => [r.id, r])), broken };
  }

  // ---------------------------------------------------------------- evaluation

  /** Checks committed events against the workspace's rules and raises the alerts. Returns the detections. */
  async process(workspaceId: string, events: DetectableEvent[], options: { rules?: WorkspaceDetection; windows?: Windows; raise?: boolean } = {}): Promise<Detection[]> {
    const w = options.rules ?? (await this.rulesFor(workspaceId));
    const windows = options.windows ?? this.windows;
    const detections: Detection[] = [];
    for (const event of events) {
      const ref: EventRef = { id: event.id, ts: event.ts.toISOString() };
      const matches = w.engine.match(event.doc);
      for (const m of matches) {
        if (w.engine.alertsOnItsOwn(m.rule)) detections.push(this.detection(workspaceId, w.rows.get(m.rule.key)!, m.rule.severity, 'sigma', '', ref, event.ts, { matchedFields: m.rule.doc.fields }));
        await this.feedCorrelations(workspaceId, w, windows, m.rule.doc, m.rule.key, m.view, event, ref, detections, 0);
      }
      for (const t of w.thresholds) {
        if (!t.compiled.match(event.doc)) continue;
        const view = new EventView(event.doc, this.mapping);
        const d = t.compiled.definition;
        const group = groupValues(view, d.groupBy ?? []);
        const value = d.distinctField ? view.texts(d.distinctField)?.[0] : undefined;
        if (d.distinctField && value === undefined) continue;
        const result = await windows.add(`${workspaceId}:${t.row.id}:${group.key}`, { type: d.distinctField ? 'value_count' : 'event_count', timespanMs: t.compiled.timespanMs, condition: d.condition }, { eventId: event.id, at: event.ts.getTime(), value });
        if (result.fired) detections.push(this.detection(workspaceId, t.row, severityOf(t.row), 'threshold', group.key, ref, event.ts, { count: result.count, timespan: d.timespan, groupBy: group.values, ...(d.distinctField ? { distinctField: d.distinctField } : {}) }));
      }
    }
    this.metric.inc({ outcome: 'checked' }, events.length);
    if (detections.length > 0 && options.raise !== false) {
      this.metric.inc({ outcome: 'detected' }, detections.length);
      await this.alerts.raiseMany(detections);
    }
    return detections;
  }

  private async feedCorrelations(workspaceId: string, w: WorkspaceDetection, windows: Windows, doc: { id: string | null; name: string | null }, key: string, view: EventView, event: DetectableEvent, ref: EventRef, out: Detection[], depth: number): Promise<void> {
    if (depth > 8) return; // chains deeper than this are cycles
    for (const c of w.engine.correlationsOf(doc, key)) {
      const cdoc = c.doc;
      const refName = [doc.name, doc.id, key].find((r) => r !== null && cdoc.rules.includes(r)) ?? key;
      const fieldFor = (f: string) => cdoc.aliases[f]?.[refName] ?? cdoc.aliases[f]?.[doc.id ?? ''] ?? f;
      const group = groupValues(view, cdoc.groupBy, fieldFor);
      let value: string | undefined;
      if (cdoc.type === 'value_count') {
        value = view.texts(fieldFor(cdoc.field!))?.[0];
        if (value === undefined) continue;
      } else if (cdoc.type === 'temporal' || cdoc.type === 'temporal_ordered') {
        value = refName;
      }
      const result = await windows.add(`${workspaceId}:${c.key}:${group.key}`, { type: cdoc.type, timespanMs: cdoc.timespanMs, condition: cdoc.condition, sequence: cdoc.rules }, { eventId: event.id, at: event.ts.getTime(), value });
      if (!result.fired) continue;
      out.push(this.detection(workspaceId, w.rows.get(c.key)!, c.severity, 'correlation', group.key, ref, event.ts, { type: cdoc.type, count: result.count, timespan: `${cdoc.timespanMs / 1000}s`, groupBy: group.values }));
      await this.feedCorrelations(workspaceId, w, windows, cdoc as SigmaCorrelationRule, c.key, view, event, ref, out, depth + 1);
    }
  }

  private detection(workspaceId: string, row: RuleRow, severity: Severity, kind: Detection['ruleKind'], groupKey: string, ref: EventRef, at: Date, details: Record<string, unknown>): Detection {
    return { workspaceId, ruleId: row.id, ruleTitle: row.title, ruleKind: kind, severity, groupKey, events: [ref], at, tags: row.tags, details };
  }

  // ---------------------------------------------------------------- streaming

  /** Events waiting for detection; ingestion pushes back when this grows past its limit. */
  get backlog(): number {
    return this.queued;
  }

  /**
   * Queues committed events for detection, in commit order, off the ingest path: the source's
   * acknowledgement does not wait for rules, and a failure here never loses the stored events.
   */
  enqueue(workspaceId: string, events: DetectableEvent[]): void {
    if (events.length === 0) return;
    this.queue.push({ workspaceId, events });
    this.queued += events.length;
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const next = this.queue.shift()!;
      try {
        // One retry: a rule change or a brief database hiccup should not skip detection.
        await this.process(next.workspaceId, next.events).catch(async (err: unknown) => {
          this.platform.logger.warn({ component: 'detect', err, workspaceId: next.workspaceId }, 'detection failed for a batch; trying once more');
          this.workspaces.delete(next.workspaceId);
          await new Promise((r) => setTimeout(r, 200));
          return this.process(next.workspaceId, next.events);
        });
      } catch (err) {
        this.metric.inc({ outcome: 'failed' }, next.events.length);
        this.platform.logger.error({ component: 'detect', err, workspaceId: next.workspaceId, events: next.events.length }, 'detection failed for a batch; retro-hunt the time range to check it again');
      }
      this.queued -= next.events.length;
    }
  }

  /** Resolves when every queued event has been checked. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  // ---------------------------------------------------------------- retro-hunt

  /** Starts running one rule over stored events of a time range; progress is kept in `detection_hunts`. */
  async startHunt(workspaceId: string, ruleId: string, range: { from: Date; to: Date; raiseAlerts?: boolean }, actorId: string | null): Promise<{ id: string; done: Promise<void> }> {
    if (!(range.from < range.to)) throw new SiqError('SIQ_VALIDATION', '"from" must be before "to".');
    const row = await this.get(workspaceId, ruleId);
    if (row.doc_kind === 'filter') throw new SiqError('SIQ_RULE_INVALID', 'A meta filter is not run on its own; hunt with the rule it filters.', { details: { reason: 'filter_hunt' } });
    const id = await withWorkspace(this.platform.db, workspaceId, async (tx) => (await tx.query<{ id: string }>(
      'INSERT INTO detection_hunts (workspace_id, rule_id, range_from, range_to, raise_alerts, created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id',
      [workspaceId, ruleId, range.from, range.to, range.raiseAlerts === true, actorId])).rows[0]!.id);
    const done = this.runHunt(workspaceId, id, row, range).catch(async (err: unknown) => {
      this.platform.logger.error({ component: 'detect', err, huntId: id }, 'retro-hunt failed');
      await withWorkspace(this.platform.db, workspaceId, (tx) => tx.query("UPDATE detection_hunts SET status = 'failed', error = $2, finished_at = now() WHERE id = $1", [id, (err as Error).message.slice(0, 500)])).catch(() => undefined);
    });
    return { id, done };
  }

  private async runHunt(workspaceId: string, huntId: string, row: RuleRow, range: { from: Date; to: Date; raiseAlerts?: boolean }): Promise<void> {
    // The hunted rule with what it needs: the filters that may name it and, for a correlation,
    // the rules it references. Windows are the hunt's own, so live ones are left alone.
    const { rows, placeholders } = await withWorkspace(this.platform.db, workspaceId, async (tx) => ({
      rows: (await tx.query<RuleRow>("SELECT * FROM detection_rules WHERE workspace_id = $1 AND (id = $2 OR (kind = 'sigma' AND doc_kind IN ('rule', 'filter') AND enabled))", [workspaceId, row.id])).rows,
      placeholders: await this.placeholders(tx),
    }));
    let referenced = new Set<string>();
    if (row.doc_kind === 'correlation') {
      const parsed = parseSigmaYaml(row.source)[0];
      if (parsed?.ok && parsed.rule.kind === 'correlation') referenced = new Set(parsed.rule.rules);
    }
    const relevant = rows.filter((r) => r.id === row.id || r.doc_kind === 'filter' || (r.sigma_id !== null && referenced.has(r.sigma_id)) || (r.name !== null && referenced.has(r.name)));
    const rules = this.compile(relevant, { placeholders });
    const windows = new Windows(this.platform.cache, `detect:hunt:${huntId}:`);
    const span = range.to.getTime() - range.from.getTime();
    let cursor: { ts: Date; id: string } | null = null;
    let scanned = 0;
    let matched = 0;
    for (;;) {
      const after: { ts: Date; id: string } | null = cursor;
      const page: DetectableEvent[] = await withWorkspace(this.platform.db, workspaceId, async (tx): Promise<DetectableEvent[]> => (await tx.query<DetectableEvent>(
        `SELECT id, ts, ${eventDocSql()} AS doc FROM events WHERE workspace_id = $1 AND ts >= $2 AND ts < $3 ${after ? 'AND (ts, id) > ($4, $5)' : ''} ORDER BY ts, id LIMIT 2000`,
        after ? [workspaceId, range.from, range.to, after.ts, after.id] : [workspaceId, range.from, range.to])).rows);
      if (page.length === 0) break;
      const detections = await this.process(workspaceId, page, { rules, windows, raise: range.raiseAlerts === true });
      matched += detections.filter((d) => d.ruleId === row.id).length;
      scanned += page.length;
      const last: DetectableEvent = page.at(-1)!;
      cursor = { ts: last.ts, id: last.id };
      const progress = Math.min(1, (last.ts.getTime() - range.from.getTime()) / span);
      await withWorkspace(this.platform.db, workspaceId, (tx) => tx.query('UPDATE detection_hunts SET events_scanned = $2, matches = $3, progress = $4 WHERE id = $1', [huntId, scanned, matched, progress]));
    }
    await withWorkspace(this.platform.db, workspaceId, (tx) => tx.query("UPDATE detection_hunts SET status = 'done', progress = 1, events_scanned = $2, matches = $3, finished_at = now() WHERE id = $1", [huntId, scanned, matched]));
  }

  async hunt(workspaceId: string, huntId: string) {
    const row = await withWorkspace(this.platform.db, workspaceId, async (tx) => (await tx.query<Record<string, unknown>>('SELECT * FROM detection_hunts WHERE workspace_id = $1 AND id = $2', [workspaceId, huntId])).rows[0]);
    if (!row) throw new SiqError('SIQ_NOT_FOUND', 'No such retro-hunt in this workspace.');
    return {
      id: row.id, ruleId: row.rule_id, from: (row.range_from as Date).toISOString(), to: (row.range_to as Date).toISOString(), status: row.status,
      eventsScanned: Number(row.events_scanned), matches: Number(row.matches), progress: Number(row.progress), error: row.error, raiseAlerts: row.raise_alerts,
      createdAt: (row.created_at as Date).toISOString(), finishedAt: row.finished_at ? (row.finished_at as Date).toISOString() : null,
    };
  }
}

/** Values of the group-by fields of an event, and the key they make. */
function groupValues(view: EventView, fields: string[], rename: (f: string) => string = (f) => f): { key: string; values: Record<string, string> } {
  if (fields.length === 0) return { key: '', values: {} };
  const values: Record<string, string> = {};
  for (const f of fields) values[f] = view.texts(rename(f))?.[0] ?? '';
  const key = fields.map((f) => `${f}=${values[f]}`).join('|');
  // Keys go into cache key names: long ones are hashed, values stay in the alert's details.
  return { key: key.length > 200 ? createHash('sha256').update(key).digest('hex') : key, values };
}

