import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import type { Database, Queryable } from '../../platform/db/types.js';
import { redactValue } from '../../platform/log/redact.js';
import { entryHash, GENESIS_HASH, PLATFORM_CHAIN, type ChainedFields } from './chain.js';

export interface AuditInput {
  workspaceId?: string | null;
  userId?: string | null;
  userEmail?: string | null;
  apiKeyId?: string | null;
  action: string;
  resource: string;
  resourceId?: string | null;
  description?: string;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
  metadata?: Record<string, unknown>;
}

export interface AuditEntry extends ChainedFields {
  id: number;
  prevHash: string;
  hash: string;
}

interface Row {
  id: number;
  workspace_id: string;
  seq: number;
  created_at: Date;
  user_id: string | null;
  user_email: string | null;
  api_key_id: string | null;
  action: string;
  resource: string;
  resource_id: string | null;
  description: string;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  metadata: unknown;
  prev_hash: string;
  hash: string;
}

/** A row of audit_logs as the database returns it. */
export type AuditRow = Row;

export function fromRow(r: Row): AuditEntry {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    seq: r.seq,
    createdAt: r.created_at.toISOString(),
    userId: r.user_id,
    userEmail: r.user_email,
    apiKeyId: r.api_key_id,
    action: r.action,
    resource: r.resource,
    resourceId: r.resource_id,
    description: r.description,
    ip: r.ip,
    userAgent: r.user_agent,
    requestId: r.request_id,
    metadata: r.metadata,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/**
 * Appends one entry to its workspace's hash chain. The chain is extended under a per-workspace
 * advisory lock, so concurrent appends (from any process) get consecutive sequence numbers and
 * each links to the one before. Metadata passes through the log redactor: no secret lands here.
 */
export async function appendAudit(db: Database, input: AuditInput): Promise<AuditEntry> {
  const workspaceId = input.workspaceId ?? PLATFORM_CHAIN;
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 42))', [`audit:${workspaceId}`]);
    const last = await tx.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_logs WHERE workspace_id = $1 ORDER BY seq DESC LIMIT 1', [workspaceId]);
    const prevHash = last.rows[0]?.hash ?? GENESIS_HASH;
    const fields: ChainedFields = {
      workspaceId,
      seq: (last.rows[0]?.seq ?? 0) + 1,
      createdAt: new Date().toISOString(),
      userId: input.userId ?? null,
      userEmail: input.userEmail ?? null,
      apiKeyId: input.apiKeyId ?? null,
      action: input.action,
      resource: input.resource,
      resourceId: input.resourceId ?? null,
      description: input.description ?? '',
      ip: input.ip ?? null,
      userAgent: input.userAgent ?? null,
      requestId: input.requestId ?? null,
      metadata: JSON.parse(JSON.stringify(redactValue(input.metadata ?? {}))),
    };
    const hash = entryHash(prevHash, fields);
    const { rows } = await tx.query<{ id: number }>(
      `INSERT INTO audit_logs (workspace_id, seq, created_at, user_id, user_email, api_key_id, action, resource, resource_id, description, ip, user_agent, request_id, metadata, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
      [fields.workspaceId, fields.seq, fields.createdAt, fields.userId, fields.userEmail, fields.apiKeyId, fields.action, fields.resource, fields.resourceId, fields.description, fields.ip, fields.userAgent, fields.requestId, JSON.stringify(fields.metadata), prevHash, hash],
    );
    return { ...fields, id: rows[0]!.id, prevHash, hash };
  });
}

export interface AuditQuery {
  workspaceId: string;
  from?: Date;
  to?: Date;
  userId?: string;
  action?: string;
  resource?: string;
  /** Entries with seq below this (for paging backwards from the newest). */
  beforeSeq?: number;
  limit?: number;
}

function where(q: AuditQuery): { sql: string; params: unknown[] } {
  const clauses = ['workspace_id = $1'];
  const params: unknown[] = [q.workspaceId];
  const add = (clause: string, value: unknown) => {
    params.push(value);
    clauses.push(clause.replace('?', `$${params.length}`));
  };
  if (q.from) add('created_at >= ?', q.from);
  if (q.to) add('created_at < ?', q.to);
  if (q.userId) add('user_id = ?', q.userId);
  if (q.action) add(q.action.endsWith('*') ? 'action LIKE ?' : 'action = ?', q.action.endsWith('*') ? `${q.action.slice(0, -1).replace(/[\\%_]/g, '\\$&')}%` : q.action);
  if (q.resource) add('resource = ?', q.resource);
  if (q.beforeSeq) add('seq < ?', q.beforeSeq);
  return { sql: clauses.join(' AND '), params };
}

/** Newest first, filtered; page with `beforeSeq` = the last entry's seq. */
export async function queryAudit(db: Queryable, q: AuditQuery): Promise<AuditEntry[]> {
  const { sql, params } = where(q);
  const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000);
  const { rows } = await db.query<Row>(`SELECT * FROM audit_logs WHERE ${sql} ORDER BY seq DESC LIMIT ${limit}`, params);
  return rows.map(fromRow);
}

/** Every matching entry, oldest first, read in keyset batches so memory stays bounded. */
export async function* iterateAudit(db: Queryable, q: Omit<AuditQuery, 'beforeSeq' | 'limit'>, batchSize = 1000): AsyncGenerator<AuditEntry> {
  let afterSeq = 0;
  for (;;) {
    const { sql, params } = where(q);
    params.push(afterSeq);
    const { rows } = await db.query<Row>(`SELECT * FROM audit_logs WHERE ${sql} AND seq > $${params.length} ORDER BY seq LIMIT ${batchSize}`, params);
    for (const row of rows) yield fromRow(row);
    if (rows.length < batchSize) return;
    afterSeq = rows.at(-1)!.seq;
  }
}

export interface VerifyResult {
  ok: boolean;
  workspaceId: string;
  checked: number;
  /** The first entry that does not verify, and why. */
  firstBroken?: { seq: number; id: number | null; reason: string };
  /** Entries up to this seq were archived by the data lifecycle job; checking starts after its anchor. */
  archivedThroughSeq?: number;
}

/** The archived segments of a chain (audit_chain_anchors, written by the data lifecycle job), oldest first. */
export async function chainAnchors(db: Queryable, workspaceId: string): Promise<Array<{ firstSeq: number; throughSeq: number; firstPrevHash: string; lastHash: string }>> {
  const { rows } = await db.query<{ first_seq: number; archived_through_seq: number; first_prev_hash: string; last_hash: string }>(
    'SELECT first_seq, archived_through_seq, first_prev_hash, last_hash FROM audit_chain_anchors WHERE workspace_id = $1 ORDER BY archived_through_seq',
    [workspaceId],
  );
  return rows.map((r) => ({ firstSeq: r.first_seq, throughSeq: r.archived_through_seq, firstPrevHash: r.first_prev_hash, lastHash: r.last_hash }));
}

/**
 * Recomputes a workspace's chain and names the first broken link. When older entries were
 * archived, the archived segments' anchors must link to each other from the genesis hash, and
 * the remaining entries are checked from the newest anchor's hash instead of the genesis hash.
 */
export async function verifyChain(db: Queryable, workspaceId: string): Promise<VerifyResult> {
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  let checked = 0;
  for (const anchor of await chainAnchors(db, workspaceId)) {
    if (anchor.firstSeq !== expectedSeq || anchor.firstPrevHash !== prevHash) return { ok: false, workspaceId, checked, firstBroken: { seq: anchor.firstSeq, id: null, reason: 'the archived segments\' anchors do not link' } };
    prevHash = anchor.lastHash;
    expectedSeq = anchor.throughSeq + 1;
  }
  const archived = expectedSeq > 1 ? { archivedThroughSeq: expectedSeq - 1 } : {};
  for await (const entry of iterateAudit(db, { workspaceId })) {
    if (entry.seq !== expectedSeq) return { ok: false, workspaceId, checked, ...archived, firstBroken: { seq: expectedSeq, id: null, reason: `entry ${expectedSeq} is missing (next present is ${entry.seq})` } };
    if (entry.prevHash !== prevHash) return { ok: false, workspaceId, checked, ...archived, firstBroken: { seq: entry.seq, id: entry.id, reason: 'prev_hash does not match the hash of the entry before' } };
    const { id: _id, prevHash: _p, hash, ...fields } = entry;
    if (entryHash(prevHash, fields) !== hash) return { ok: false, workspaceId, checked, ...archived, firstBroken: { seq: entry.seq, id: entry.id, reason: 'content does not match its hash (the entry was altered)' } };
    prevHash = hash;
    expectedSeq++;
    checked++;
  }
  // The lifecycle job never archives a chain's newest entry: an archived chain with nothing left was cut.
  if (archived.archivedThroughSeq && checked === 0) return { ok: false, workspaceId, checked, ...archived, firstBroken: { seq: expectedSeq, id: null, reason: `entry ${expectedSeq} is missing (nothing is left after the archived entries)` } };
  return { ok: true, workspaceId, checked, ...archived };
}

/** Every chain in the database (the CLI verifies them all). */
export async function listChains(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ workspace_id: string }>('SELECT DISTINCT workspace_id FROM audit_logs ORDER BY workspace_id');
  return rows.map((r) => r.workspace_id);
}

export const CSV_HEADER = ['Timestamp', 'User', 'Action', 'Resource', 'Resource ID', 'Description', 'IP Address'];

/** Spreadsheet programs run cells that start with = + - @ (or tab/CR) as formulas; a leading ' makes them text. */
export function csvSafe(value: string | null | undefined): string {
  const text = value ?? '';
  return /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
}

/** The filtered log as CSV, streamed. */
export function exportCsv(db: Queryable, q: Omit<AuditQuery, 'beforeSeq' | 'limit'>): Readable {
  const rows = Readable.from(
    (async function* () {
      for await (const e of iterateAudit(db, q)) {
        yield [e.createdAt, csvSafe(e.userEmail ?? e.userId ?? (e.apiKeyId ? `api-key:${e.apiKeyId}` : '')), csvSafe(e.action), csvSafe(e.resource), csvSafe(e.resourceId), csvSafe(e.description), csvSafe(e.ip)];
      }
    })(),
  );
  const csv = stringify({ header: true, columns: CSV_HEADER, quoted_match: /[",\r\n]/ });
  rows.on('error', (err) => csv.destroy(err));
  return rows.pipe(csv);
}

/** The filtered log as NDJSON (every field, hashes included), streamed. */
export function exportNdjson(db: Queryable, q: Omit<AuditQuery, 'beforeSeq' | 'limit'>): Readable {
  return Readable.from(
    (async function* () {
      for await (const e of iterateAudit(db, q)) yield `${JSON.stringify(e)}\n`;
    })(),
  );
}
