import { createHash } from 'node:crypto';
import { SiqError } from '../../errors.js';
import type { Platform } from '../../platform/index.js';
import { getJson, putGzipLines, readGzipLines } from '../../platform/objects/gzip-lines.js';
import { dayStart, PartitionManager } from './partitions.js';

const DAY_MS = 86_400_000;
const COLUMNS = ['id', 'workspace_id', 'ts', 'received_at', 'source', 'event_category', 'event_action', 'event_outcome', 'event_severity', 'host_name', 'source_ip', 'destination_ip', 'user_name', 'message', 'doc'] as const;

export interface ArchiveManifest {
  format: 'siq-events-ndjson-gzip/1';
  workspaceId: string;
  day: string;
  events: number;
  bytes: number;
  sha256: string;
  createdAt: string;
}

export const archiveKey = (workspaceId: string, day: string) => `events/${workspaceId}/${day}.ndjson.gz`;
export const manifestKey = (workspaceId: string, day: string) => `events/${workspaceId}/${day}.manifest.json`;

function dayBounds(day: string): [Date, Date] {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || Number.isNaN(Date.parse(`${day}T00:00:00Z`))) throw new SiqError('SIQ_VALIDATION', `"${day}" is not a day (YYYY-MM-DD).`);
  const start = new Date(`${day}T00:00:00Z`);
  return [start, new Date(start.getTime() + DAY_MS)];
}

/**
 * Writes one workspace's events of one day to the archives bucket as gzip-compressed NDJSON,
 * then its manifest (count, size, SHA-256 of the object). Rows are read in keyset batches and
 * streamed, so a day of any size passes in bounded memory. Returns the manifest.
 */
export async function archiveDay(platform: Platform, workspaceId: string, day: string): Promise<ArchiveManifest> {
  const [from, to] = dayBounds(day);
  const { db, objects } = platform;
  let count = 0;
  const rows = (async function* () {
    let after: [Date, string] | null = null;
    for (;;) {
      const params: unknown[] = [workspaceId, from, to];
      let cursor = '';
      if (after) {
        params.push(after[0], after[1]);
        cursor = ' AND (ts, id) > ($4, $5)';
      }
      const { rows: batch } = await db.query<Record<string, unknown> & { ts: Date; id: string }>(
        `SELECT ${COLUMNS.join(', ')} FROM events WHERE workspace_id = $1 AND ts >= $2 AND ts < $3${cursor} ORDER BY ts, id LIMIT 5000`,
        params,
      );
      for (const row of batch) {
        count++;
        yield `${JSON.stringify(row)}\n`;
      }
      if (batch.length < 5000) return;
      after = [batch.at(-1)!.ts, batch.at(-1)!.id];
    }
  })();
  const { bytes, sha256 } = await putGzipLines(objects, 'archives', archiveKey(workspaceId, day), rows);
  const manifest: ArchiveManifest = { format: 'siq-events-ndjson-gzip/1', workspaceId, day, events: count, bytes, sha256, createdAt: new Date().toISOString() };
  await objects.put('archives', manifestKey(workspaceId, day), JSON.stringify(manifest, null, 2), { contentType: 'application/json' });
  return manifest;
}

export async function readManifest(platform: Platform, workspaceId: string, day: string): Promise<ArchiveManifest | null> {
  if (!(await platform.objects.head('archives', manifestKey(workspaceId, day)))) return null;
  return getJson<ArchiveManifest>(platform.objects, 'archives', manifestKey(workspaceId, day));
}

/** Checks an archive against its manifest; returns the manifest or throws SIQ_ARCHIVE_CORRUPT. */
export async function verifyArchive(platform: Platform, workspaceId: string, day: string): Promise<ArchiveManifest> {
  const manifest = await readManifest(platform, workspaceId, day);
  if (!manifest) throw new SiqError('SIQ_ARCHIVE_NOT_FOUND', `No archive of ${day} for workspace ${workspaceId}.`);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of (await platform.objects.get('archives', archiveKey(workspaceId, day))).body) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  if (bytes !== manifest.bytes || hash.digest('hex') !== manifest.sha256) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `The archive of ${day} (workspace ${workspaceId}) does not match its manifest's checksum.`);
  return manifest;
}

/**
 * Brings an archived day back into the event store: the archive is verified against its
 * manifest first (nothing is inserted from a damaged one), then streamed back with COPY. Rows
 * already present (same id) are left alone, so restoring twice does not duplicate.
 */
export async function restoreArchive(platform: Platform, workspaceId: string, day: string): Promise<{ restored: number; skipped: number }> {
  const manifest = await verifyArchive(platform, workspaceId, day);
  const [from, to] = dayBounds(day);
  const existing = new Set((await platform.db.query<{ id: string }>('SELECT id FROM events WHERE workspace_id = $1 AND ts >= $2 AND ts < $3', [workspaceId, from, to])).rows.map((r) => r.id));
  const partitions = new PartitionManager(platform.db);
  await partitions.ensureFor([from.getTime()]);
  let restored = 0;
  let skipped = 0;
  let batch: unknown[][] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await platform.db.copyFrom('events', [...COLUMNS], batch);
    restored += batch.length;
    batch = [];
  };
  await readGzipLines(platform.objects, 'archives', archiveKey(workspaceId, day), async (line) => {
    const row = JSON.parse(line) as Record<string, unknown>;
    if (existing.has(String(row.id))) {
      skipped++;
      return;
    }
    batch.push(COLUMNS.map((c) => row[c] ?? null));
    if (batch.length >= 5000) await flush();
  });
  await flush();
  if (restored + skipped !== manifest.events) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `The archive holds ${restored + skipped} events, its manifest says ${manifest.events}.`);
  return { restored, skipped };
}

export interface RetentionReport {
  archived: Array<{ workspaceId: string; day: string; events: number }>;
  droppedPartitions: string[];
}

async function retentionDays(platform: Platform): Promise<Map<string, number>> {
  const { rows } = await platform.db.query<{ workspace_id: string; retention_days: number }>('SELECT workspace_id, retention_days FROM event_retention');
  return new Map(rows.map((r) => [r.workspace_id, r.retention_days]));
}

/** Archives (if not archived yet) and removes one workspace's events of one day. */
async function expire(platform: Platform, workspaceId: string, day: string, report: RetentionReport): Promise<void> {
  const [from, to] = dayBounds(day);
  const manifest = (await readManifest(platform, workspaceId, day)) ?? (await archiveDay(platform, workspaceId, day));
  const { rows } = await platform.db.query<{ n: number }>('SELECT count(*) AS n FROM events WHERE workspace_id = $1 AND ts >= $2 AND ts < $3', [workspaceId, from, to]);
  // Rows that arrived after an earlier archive of this day (late events) get archived again.
  const final = rows[0]!.n > manifest.events ? await archiveDay(platform, workspaceId, day) : manifest;
  await platform.db.query('DELETE FROM events WHERE workspace_id = $1 AND ts >= $2 AND ts < $3', [workspaceId, from, to]);
  report.archived.push({ workspaceId, day, events: final.events });
}

async function dropIfEmpty(platform: Platform, name: string, report: RetentionReport): Promise<void> {
  const { rows } = await platform.db.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${name}) AS any`);
  if (rows[0]?.any) return;
  // DETACH … CONCURRENTLY does not block writers to the other partitions (PostgreSQL 14+).
  await platform.db.exec(`ALTER TABLE events DETACH PARTITION ${name} CONCURRENTLY`).catch(() => platform.db.exec(`ALTER TABLE events DETACH PARTITION ${name}`));
  await platform.db.exec(`DROP TABLE ${name}`);
  report.droppedPartitions.push(name);
}

/**
 * One retention pass: every workspace's days past its retention are archived, verified and
 * removed; emptied day partitions are dropped; then, while the store is over EVENTS_MAX_BYTES,
 * the oldest whole days go the same way. Only old partitions are touched, so ingestion (which
 * writes to today's) is never blocked.
 */
export async function runRetention(platform: Platform, now: Date = new Date()): Promise<RetentionReport> {
  const report: RetentionReport = { archived: [], droppedPartitions: [] };
  const manager = new PartitionManager(platform.db);
  const custom = await retentionDays(platform);
  const today = dayStart(now);
  for (const { name, day } of await manager.list()) {
    const start = Date.parse(`${day}T00:00:00Z`);
    if (start >= today) continue;
    const { rows } = await platform.db.query<{ workspace_id: string }>(`SELECT DISTINCT workspace_id FROM ${name}`);
    for (const { workspace_id: workspaceId } of rows) {
      const days = custom.get(workspaceId) ?? platform.config.ingest.retentionDays;
      if (start + DAY_MS <= now.getTime() - days * DAY_MS) await expire(platform, workspaceId, day, report);
    }
    await dropIfEmpty(platform, name, report);
  }
  const budget = platform.config.ingest.maxBytes;
  if (budget > 0) {
    for (const { name, day } of await manager.list()) {
      if (Date.parse(`${day}T00:00:00Z`) >= today) break;
      const size = await platform.db.query<{ bytes: number }>("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS bytes FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'");
      if (size.rows[0]!.bytes <= budget) break;
      const { rows } = await platform.db.query<{ workspace_id: string }>(`SELECT DISTINCT workspace_id FROM ${name}`);
      for (const { workspace_id: workspaceId } of rows) await expire(platform, workspaceId, day, report);
      await dropIfEmpty(platform, name, report);
    }
  }
  return report;
}

/** Workspaces that have an archive of `day`. */
export async function archivedWorkspaces(platform: Platform, day: string): Promise<string[]> {
  dayBounds(day);
  const out: string[] = [];
  for await (const object of platform.objects.list('archives', 'events/')) {
    const m = /^events\/([0-9a-f-]{36})\/(\d{4}-\d{2}-\d{2})\.manifest\.json$/.exec(object.key);
    if (m && m[2] === day) out.push(m[1]!);
  }
  return out;
}
