import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { isSiqError, SiqError } from '../../errors.js';
import { isUuid } from '../../http/auth.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import type { Queryable } from '../../platform/db/types.js';
import type { Platform } from '../../platform/index.js';
import type { IncidentService } from '../incidents/service.js';
import type { UploadService } from '../uploads/service.js';
import { custodyHash, GENESIS_HASH, verifyChain, type CustodyAction, type CustodyEntry, type CustodyFields } from './custody.js';

/** Who accesses evidence, from where: what a custody entry records besides the action. */
export interface AccessContext {
  userId?: string;
  apiKeyId?: string;
  /** The user's email (or the API key's name), kept on the entry so the chain reads on its own. */
  email?: string | null;
  ip?: string | null;
  requestId?: string | null;
}

export interface Evidence {
  id: string;
  workspaceId: string;
  incidentId: string;
  uploadId: string;
  filename: string;
  /** Detected from the content. */
  contentType: string;
  /** What the uploader's client said. */
  declaredContentType: string | null;
  size: number;
  sha256: string;
  description: string;
  uploadedBy: string | null;
  uploadedByApiKey: string | null;
  createdAt: string;
  lastVerifiedAt: string | null;
  lastVerification: 'passed' | 'failed' | null;
  /** Set on a tombstone: the bytes are gone, the record and its custody chain stay. */
  deletedAt: string | null;
  deletedBy: string | null;
  deletionReason: string | null;
}

export interface VerifyReport {
  evidenceId: string;
  ok: boolean;
  result: 'passed' | 'failed';
  /** Every difference found, in words. */
  problems: string[];
  content: { checked: boolean; ok: boolean | null; expectedSha256: string; actualSha256: string | null; expectedSize: number; actualSize: number | null; note?: string };
  chain: { ok: boolean; entries: number; problems: string[] };
  /** The custody entry this verification added (none for a tombstone: its chain is closed). */
  entry: CustodyEntry | null;
}

interface EvidenceRow {
  id: string;
  workspace_id: string;
  incident_id: string;
  upload_id: string;
  filename: string;
  content_type: string;
  declared_content_type: string | null;
  size: number | string;
  sha256: string;
  description: string;
  uploaded_by: string | null;
  uploaded_by_api_key: string | null;
  created_at: Date;
  last_verified_at: Date | null;
  last_verification: 'passed' | 'failed' | null;
  deleted_at: Date | null;
  deleted_by: string | null;
  deletion_reason: string | null;
}

interface CustodyRow {
  evidence_id: string;
  workspace_id: string;
  seq: number;
  action: CustodyAction;
  created_at: Date;
  actor_user_id: string | null;
  actor_email: string | null;
  actor_api_key_id: string | null;
  ip: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

function present(r: EvidenceRow): Evidence {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    incidentId: r.incident_id,
    uploadId: r.upload_id,
    filename: r.filename,
    contentType: r.content_type,
    declaredContentType: r.declared_content_type,
    size: Number(r.size),
    sha256: r.sha256,
    description: r.description,
    uploadedBy: r.uploaded_by,
    uploadedByApiKey: r.uploaded_by_api_key,
    createdAt: r.created_at.toISOString(),
    lastVerifiedAt: r.last_verified_at ? r.last_verified_at.toISOString() : null,
    lastVerification: r.last_verification,
    deletedAt: r.deleted_at ? r.deleted_at.toISOString() : null,
    deletedBy: r.deleted_by,
    deletionReason: r.deletion_reason,
  };
}

function presentEntry(r: CustodyRow): CustodyEntry {
  return {
    evidenceId: r.evidence_id,
    workspaceId: r.workspace_id,
    seq: Number(r.seq),
    action: r.action,
    at: r.created_at.toISOString(),
    actorUserId: r.actor_user_id,
    actorEmail: r.actor_email,
    actorApiKeyId: r.actor_api_key_id,
    ip: r.ip,
    requestId: r.request_id,
    details: r.details,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

const actorOf = (ctx: AccessContext) => ({ userId: ctx.userId, apiKeyId: ctx.apiKeyId });
const SHA256 = /^[0-9a-f]{64}$/;

/** SHA-256 and length of a stream, read to the end. */
export async function hashStream(stream: Readable): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    hash.update(buf);
    size += buf.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Evidence attached to incidents, stored byte-for-byte through the upload service (purpose
 * 'evidence', SHA-256 computed while streaming), with a chain of custody per item: every upload,
 * view, download, export, verification and the deletion is an append-only, hash-linked entry.
 * Evidence can be deleted only once its incident is closed; the row stays as a tombstone.
 */
export class EvidenceService {
  constructor(private readonly platform: Platform, private readonly incidents: IncidentService, private readonly uploads: UploadService) {}

  /** Streams a file into the store and records it, with the first custody entry (upload). */
  async add(workspaceId: string, incidentId: string, body: Readable, meta: { filename: string; declaredContentType?: string | null; description?: string; expectedSha256?: string }, ctx: AccessContext): Promise<Evidence> {
    const description = (meta.description ?? '').trim();
    if (description.length > 10_000) {
      body.resume();
      throw new SiqError('SIQ_VALIDATION', 'description has at most 10000 characters.');
    }
    const expected = meta.expectedSha256?.trim().toLowerCase();
    if (expected !== undefined && expected !== '' && !SHA256.test(expected)) {
      body.resume();
      throw new SiqError('SIQ_VALIDATION', 'sha256 must be 64 hexadecimal characters.');
    }
    // Refuse before storing anything when the incident is missing or closed.
    await withWorkspace(this.platform.db, workspaceId, async (tx) => this.openIncident(tx, workspaceId, incidentId)).catch((err: unknown) => {
      body.resume();
      throw err;
    });
    const upload = await this.uploads.storeStream(workspaceId, body, { purpose: 'evidence', filename: meta.filename, createdBy: ctx.userId ?? null });
    try {
      if (expected && expected !== upload.sha256) {
        throw new SiqError('SIQ_EVIDENCE_HASH_MISMATCH', `The file received has SHA-256 ${upload.sha256}, not ${expected} as sent; it was not kept.`, { details: { expected, received: upload.sha256, size: upload.size } });
      }
      return await withWorkspace(this.platform.db, workspaceId, async (tx) => {
        await this.openIncident(tx, workspaceId, incidentId, true);
        const { rows } = await tx.query<EvidenceRow>(
          `INSERT INTO evidence (workspace_id, incident_id, upload_id, filename, content_type, declared_content_type, size, sha256, description, uploaded_by, uploaded_by_api_key, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *`,
          [workspaceId, incidentId, upload.id, upload.filename, upload.contentType, meta.declaredContentType ?? null, upload.size, upload.sha256, description, ctx.userId ?? null, ctx.apiKeyId ?? null, upload.createdAt],
        );
        const row = rows[0]!;
        await this.append(tx, row, 'upload', ctx, { sha256: upload.sha256, size: upload.size, filename: upload.filename, contentType: upload.contentType, uploadId: upload.id, incidentId, ...(expected ? { clientSha256: expected } : {}) });
        await this.incidents.appendTimeline(tx, workspaceId, incidentId, 'evidence_added', actorOf(ctx), `evidence "${upload.filename}" added (${upload.size} bytes, SHA-256 ${upload.sha256})`, { evidenceId: row.id, sha256: upload.sha256, size: upload.size });
        return present(row);
      });
    } catch (err) {
      await this.uploads.delete(workspaceId, upload.id).catch((deleteErr: unknown) => this.platform.logger.warn({ err: deleteErr, uploadId: upload.id }, 'could not remove the upload of refused evidence'));
      throw err;
    }
  }

  /** Evidence of an incident, tombstones included (listing is not an access to the evidence and adds no custody entry). */
  async list(workspaceId: string, incidentId: string): Promise<Evidence[]> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      await this.incidents.load(tx, workspaceId, incidentId);
      const { rows } = await tx.query<EvidenceRow>('SELECT * FROM evidence WHERE workspace_id = $1 AND incident_id = $2 ORDER BY created_at, id', [workspaceId, incidentId]);
      return rows.map(present);
    });
  }

  /** One item's record; a custody entry (view) is added unless it is a tombstone. */
  async view(workspaceId: string, incidentId: string, evidenceId: string, ctx: AccessContext): Promise<Evidence> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const row = await this.load(tx, workspaceId, incidentId, evidenceId, true);
      if (!row.deleted_at) await this.append(tx, row, 'view', ctx, {});
      return present(row);
    });
  }

  /**
   * The bytes, after a custody entry (download) is committed. The stream is hashed as it is
   * read; when it ends with a different SHA-256 the mismatch is logged at error level and
   * recorded on the chain (a failed verify entry), since the response is already under way.
   */
  async download(workspaceId: string, incidentId: string, evidenceId: string, ctx: AccessContext): Promise<{ evidence: Evidence; stream: Readable }> {
    const row = await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const r = await this.load(tx, workspaceId, incidentId, evidenceId, true);
      if (r.deleted_at) throw new SiqError('SIQ_EVIDENCE_DELETED');
      await this.append(tx, r, 'download', ctx, { sha256: r.sha256, size: Number(r.size) });
      return r;
    });
    const stream = await this.uploads.open(workspaceId, row.upload_id);
    const hash = createHash('sha256');
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
    });
    stream.once('end', () => {
      const actual = hash.digest('hex');
      if (actual !== row.sha256 || size !== Number(row.size)) {
        void this.recordMismatch(row, ctx, 'download', actual, size);
      }
    });
    return { evidence: present(row), stream };
  }

  /** The custody chain, oldest first, and whether it is intact (reading it adds no entry). */
  async custody(workspaceId: string, incidentId: string, evidenceId: string): Promise<{ evidence: Evidence; entries: CustodyEntry[]; chain: { ok: boolean; problems: string[] } }> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const row = await this.load(tx, workspaceId, incidentId, evidenceId);
      const entries = await this.chainOf(tx, workspaceId, row.id);
      const problems = verifyChain(entries, { evidenceId: row.id, sha256: row.sha256, size: Number(row.size) });
      return { evidence: present(row), entries, chain: { ok: problems.length === 0, problems } };
    });
  }

  /**
   * Re-reads the stored object, recomputes its SHA-256 and size, and checks the custody chain.
   * The result goes on the chain (a verify entry: passed or failed, with what differs); a
   * failure is also logged at error level and put on the incident's timeline.
   */
  async verify(workspaceId: string, incidentId: string, evidenceId: string, ctx: AccessContext): Promise<VerifyReport> {
    const { row, entries } = await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const r = await this.load(tx, workspaceId, incidentId, evidenceId);
      return { row: r, entries: await this.chainOf(tx, workspaceId, r.id) };
    });
    const expectedSize = Number(row.size);
    const content: VerifyReport['content'] = { checked: false, ok: null, expectedSha256: row.sha256, actualSha256: null, expectedSize, actualSize: null };
    const problems: string[] = [];
    if (row.deleted_at) {
      content.note = 'the evidence was deleted; only its custody chain can be checked';
    } else {
      content.checked = true;
      try {
        const actual = await hashStream(await this.uploads.open(workspaceId, row.upload_id));
        content.actualSha256 = actual.sha256;
        content.actualSize = actual.size;
        content.ok = actual.sha256 === row.sha256 && actual.size === expectedSize;
        if (actual.sha256 !== row.sha256) problems.push(`content: SHA-256 is ${actual.sha256}, recorded at upload ${row.sha256}`);
        if (actual.size !== expectedSize) problems.push(`content: ${actual.size} bytes, recorded at upload ${expectedSize}`);
      } catch (err) {
        if (!isSiqError(err, 'SIQ_OBJECT_NOT_FOUND') && !isSiqError(err, 'SIQ_NOT_FOUND')) throw err;
        content.ok = false;
        problems.push('content: the stored object is missing');
      }
    }
    const chainProblems = verifyChain(entries, { evidenceId: row.id, sha256: row.sha256, size: expectedSize });
    problems.push(...chainProblems.map((p) => `custody chain: ${p}`));
    const ok = problems.length === 0;
    const result = ok ? 'passed' : 'failed';
    let entry: CustodyEntry | null = null;
    if (!row.deleted_at) {
      entry = await withWorkspace(this.platform.db, workspaceId, async (tx) => {
        const locked = await this.load(tx, workspaceId, incidentId, evidenceId, true);
        const added = await this.append(tx, locked, 'verify', ctx, {
          result,
          sha256Expected: row.sha256,
          sha256Actual: content.actualSha256,
          sizeExpected: expectedSize,
          sizeActual: content.actualSize,
          chainEntriesChecked: entries.length,
          problems,
        });
        await tx.query('UPDATE evidence SET last_verified_at = $2, last_verification = $3 WHERE id = $1', [row.id, added.at, result]);
        await this.incidents.appendTimeline(tx, workspaceId, row.incident_id, ok ? 'evidence_verified' : 'evidence_verification_failed', actorOf(ctx), ok ? `evidence "${row.filename}" verified: intact` : `EVIDENCE VERIFICATION FAILED for "${row.filename}": ${problems.join('; ')}`, { evidenceId: row.id, result, problems });
        return added;
      });
    }
    if (!ok) {
      this.platform.logger.error({ component: 'evidence', workspaceId, incidentId: row.incident_id, evidenceId: row.id, expectedSha256: row.sha256, actualSha256: content.actualSha256, expectedSize, actualSize: content.actualSize, problems }, `EVIDENCE INTEGRITY FAILURE: evidence ${row.id} ("${row.filename}") failed verification`);
    }
    return { evidenceId: row.id, ok, result, problems, content, chain: { ok: chainProblems.length === 0, entries: entries.length, problems: chainProblems }, entry };
  }

  /**
   * Deletes the bytes of evidence whose incident is closed (SIQ_EVIDENCE_INCIDENT_OPEN
   * otherwise). The row stays as a tombstone (hash, size, name, who deleted, why) and the chain
   * gets its final entry (delete). The caller checks that the actor is an admin.
   */
  async delete(workspaceId: string, incidentId: string, evidenceId: string, ctx: AccessContext, reason = ''): Promise<Evidence> {
    const text = reason.trim().slice(0, 2000);
    const row = await withWorkspace(this.platform.db, workspaceId, async (tx) => {
      const incident = await this.incidents.load(tx, workspaceId, incidentId, true);
      if (incident.status !== 'closed') throw new SiqError('SIQ_EVIDENCE_INCIDENT_OPEN', `Evidence can only be deleted once its incident is closed; it is ${incident.status}.`, { details: { status: incident.status } });
      const r = await this.load(tx, workspaceId, incidentId, evidenceId, true);
      if (r.deleted_at) throw new SiqError('SIQ_EVIDENCE_DELETED');
      const entry = await this.append(tx, r, 'delete', ctx, { sha256: r.sha256, size: Number(r.size), reason: text });
      const updated = (await tx.query<EvidenceRow>('UPDATE evidence SET deleted_at = $2, deleted_by = $3, deletion_reason = $4 WHERE id = $1 RETURNING *', [r.id, entry.at, ctx.userId ?? ctx.apiKeyId ?? null, text])).rows[0]!;
      await this.incidents.appendTimeline(tx, workspaceId, incidentId, 'evidence_deleted', actorOf(ctx), `evidence "${r.filename}" deleted (tombstone keeps SHA-256 ${r.sha256})`, { evidenceId: r.id, sha256: r.sha256, reason: text });
      return updated;
    });
    // After the commit: the record says deleted; the bytes go now (and return to the quota).
    await this.uploads.delete(workspaceId, row.upload_id).catch((err: unknown) => {
      if (!isSiqError(err, 'SIQ_NOT_FOUND')) this.platform.logger.error({ component: 'evidence', err, evidenceId: row.id, uploadId: row.upload_id }, 'evidence tombstoned but its bytes could not be deleted');
    });
    return present(row);
  }

  /**
   * Records an export: an export entry on the chain of every live evidence item of the incident
   * and an entry on the incident's timeline, in one transaction. Returns the evidence (tombstones
   * included) and each item's chain, export entry included.
   */
  async recordExport(workspaceId: string, incidentId: string, ctx: AccessContext, exportId: string): Promise<Array<{ evidence: Evidence; entries: CustodyEntry[] }>> {
    return withWorkspace(this.platform.db, workspaceId, async (tx) => {
      await this.incidents.load(tx, workspaceId, incidentId, true);
      const { rows } = await tx.query<EvidenceRow>('SELECT * FROM evidence WHERE workspace_id = $1 AND incident_id = $2 ORDER BY created_at, id FOR UPDATE', [workspaceId, incidentId]);
      for (const row of rows) if (!row.deleted_at) await this.append(tx, row, 'export', ctx, { exportId, sha256: row.sha256, size: Number(row.size) });
      await this.incidents.appendTimeline(tx, workspaceId, incidentId, 'exported', actorOf(ctx), `incident exported (${rows.filter((r) => !r.deleted_at).length} evidence file(s))`, { exportId, by: ctx.email ?? ctx.userId ?? ctx.apiKeyId ?? null });
      const out: Array<{ evidence: Evidence; entries: CustodyEntry[] }> = [];
      for (const row of rows) out.push({ evidence: present(row), entries: await this.chainOf(tx, workspaceId, row.id) });
      return out;
    });
  }

  /** The stored bytes for an export (no custody entry of its own: recordExport added it). */
  async openForExport(workspaceId: string, evidence: Evidence): Promise<Readable> {
    return this.uploads.open(workspaceId, evidence.uploadId);
  }

  /** Records, after the fact, that the bytes read for a download or export did not match. */
  async recordMismatch(row: { id: string; workspace_id: string; incident_id: string; filename: string; sha256: string; size: number | string }, ctx: AccessContext, during: 'download' | 'export', actualSha256: string, actualSize: number): Promise<void> {
    const problems = [`content: SHA-256 is ${actualSha256}, recorded at upload ${row.sha256}`, ...(actualSize !== Number(row.size) ? [`content: ${actualSize} bytes, recorded at upload ${row.size}`] : [])];
    this.platform.logger.error({ component: 'evidence', workspaceId: row.workspace_id, evidenceId: row.id, during, expectedSha256: row.sha256, actualSha256, problems }, `EVIDENCE INTEGRITY FAILURE: evidence ${row.id} ("${row.filename}") read during ${during} does not match its recorded hash`);
    try {
      await withWorkspace(this.platform.db, row.workspace_id, async (tx) => {
        const locked = (await tx.query<EvidenceRow>('SELECT * FROM evidence WHERE workspace_id = $1 AND id = $2 FOR UPDATE', [row.workspace_id, row.id])).rows[0];
        if (!locked || locked.deleted_at) return;
        const entry = await this.append(tx, locked, 'verify', ctx, { result: 'failed', during, sha256Expected: row.sha256, sha256Actual: actualSha256, sizeExpected: Number(row.size), sizeActual: actualSize, problems });
        await tx.query('UPDATE evidence SET last_verified_at = $2, last_verification = $3 WHERE id = $1', [row.id, entry.at, 'failed']);
        await this.incidents.appendTimeline(tx, row.workspace_id, row.incident_id, 'evidence_verification_failed', actorOf(ctx), `EVIDENCE VERIFICATION FAILED for "${row.filename}" during ${during}: ${problems.join('; ')}`, { evidenceId: row.id, during, problems });
      });
    } catch (err) {
      this.platform.logger.error({ component: 'evidence', err, evidenceId: row.id }, 'could not record an evidence integrity failure on its custody chain');
    }
  }

  private async openIncident(tx: Queryable, workspaceId: string, incidentId: string, lock = false): Promise<void> {
    const incident = await this.incidents.load(tx, workspaceId, incidentId, lock);
    if (incident.status === 'closed') throw new SiqError('SIQ_INCIDENT_CLOSED');
  }

  private async load(tx: Queryable, workspaceId: string, incidentId: string, evidenceId: string, forUpdate = false): Promise<EvidenceRow> {
    if (!isUuid(incidentId) || !isUuid(evidenceId)) throw new SiqError('SIQ_NOT_FOUND', 'No such evidence.');
    const { rows } = await tx.query<EvidenceRow>(`SELECT * FROM evidence WHERE workspace_id = $1 AND incident_id = $2 AND id = $3${forUpdate ? ' FOR UPDATE' : ''}`, [workspaceId, incidentId, evidenceId]);
    if (!rows[0]) throw new SiqError('SIQ_NOT_FOUND', 'No such evidence.');
    return rows[0];
  }

  private async chainOf(tx: Queryable, workspaceId: string, evidenceId: string): Promise<CustodyEntry[]> {
    const { rows } = await tx.query<CustodyRow>('SELECT * FROM evidence_custody WHERE workspace_id = $1 AND evidence_id = $2 ORDER BY seq', [workspaceId, evidenceId]);
    return rows.map(presentEntry);
  }

  /** Appends a custody entry; the caller holds the evidence row's lock, which keeps the chain linear. */
  private async append(tx: Queryable, row: EvidenceRow, action: CustodyAction, ctx: AccessContext, details: Record<string, unknown>): Promise<CustodyEntry> {
    const last = (await tx.query<{ seq: number; hash: string }>('SELECT seq, hash FROM evidence_custody WHERE workspace_id = $1 AND evidence_id = $2 ORDER BY seq DESC LIMIT 1', [row.workspace_id, row.id])).rows[0];
    const prevHash = last?.hash ?? GENESIS_HASH;
    const fields: CustodyFields = {
      evidenceId: row.id,
      workspaceId: row.workspace_id,
      seq: (last ? Number(last.seq) : 0) + 1,
      action,
      at: new Date().toISOString(),
      actorUserId: ctx.userId ?? null,
      actorEmail: ctx.email ?? null,
      actorApiKeyId: ctx.apiKeyId ?? null,
      ip: ctx.ip ?? null,
      requestId: ctx.requestId ?? null,
      // Through JSON once, so what is hashed is exactly what jsonb gives back.
      details: JSON.parse(JSON.stringify(details)) as Record<string, unknown>,
    };
    const hash = custodyHash(prevHash, fields);
    await tx.query(
      `INSERT INTO evidence_custody (workspace_id, evidence_id, seq, action, created_at, actor_user_id, actor_email, actor_api_key_id, ip, request_id, details, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [fields.workspaceId, fields.evidenceId, fields.seq, action, fields.at, fields.actorUserId, fields.actorEmail, fields.actorApiKeyId, fields.ip, fields.requestId, JSON.stringify(fields.details), prevHash, hash],
    );
    return { ...fields, prevHash, hash };
  }
}
