import type { Config } from '../../config/load.js';
import { SiqError } from '../../errors.js';
import type { Platform } from '../../platform/index.js';
import { quoteIdentifier } from '../../platform/db/types.js';
import { schedule, type ScheduledJob } from '../../platform/jobs/scheduler.js';
import { getJson, putGzipLines, readGzipLines } from '../../platform/objects/gzip-lines.js';
import { entryHash, GENESIS_HASH } from '../audit/chain.js';
import { fromRow, type AuditEntry, type AuditRow } from '../audit/service.js';

/**
 * Data lifecycle: append-only history older than its retention is archived to the archives
 * bucket (gzip-compressed NDJSON plus a manifest with the SHA-256 of the object), the archive is
 * read back and checked against the manifest and the rows it must hold, and only then are the
 * rows deleted — in a transaction that sets `siq.lifecycle_purge`, the one thing the append-only
 * triggers let through (migration 0010). The audit log is cut per workspace chain; each cut
 * records an anchor (the last archived hash) from which `verifyChain` continues.
 *
 * Never purged here: evidence_custody (a custody chain lives as long as its evidence, whose row
 * stays as a tombstone after deletion) and detection_rule_versions (the history of live rules,
 * removed with their rule).
 */

const DAY_MS = 86_400_000;
/** Rows per archive object: bounded memory for the id list, bounded DELETE per transaction. */
const SEGMENT_ROWS = 50_000;
const READ_BATCH = 5_000;
/** job_runs rows older than this are removed by the lifecycle job. */
const JOB_RUNS_KEEP_DAYS = 90;

export const LIFECYCLE_JOB = 'data-lifecycle';
export const MAINTENANCE_JOB = 'db-maintenance';

export type LifecycleTable = 'audit_logs' | 'policy_audit_logs' | 'security_events' | 'alert_history' | 'incident_timeline';

interface PlainTable {
  table: Exclude<LifecycleTable, 'audit_logs'>;
  days: (c: Config['lifecycle']) => number;
  /** Extra condition on rows (alias `t`) that may go: history of closed or deleted parents only. */
  condition: string;
}

const PLAIN_TABLES: readonly PlainTable[] = [
  { table: 'policy_audit_logs', days: (c) => c.policyAuditDays, condition: 'true' },
  { table: 'security_events', days: (c) => c.securityEventsDays, condition: 'true' },
  { table: 'alert_history', days: (c) => c.historyDays, condition: "NOT EXISTS (SELECT 1 FROM alerts p WHERE p.id = t.alert_id AND p.status NOT IN ('resolved', 'false_positive'))" },
  { table: 'incident_timeline', days: (c) => c.historyDays, condition: "NOT EXISTS (SELECT 1 FROM incidents p WHERE p.id = t.incident_id AND p.status <> 'closed')" },
];

export interface LifecycleManifest {
  format: 'siq-lifecycle-ndjson-gzip/1';
  table: LifecycleTable;
  /** The audit chain this segment belongs to; null for the other tables (rows of every workspace). */
  workspaceId: string | null;
  /** Rows created before this time were due. */
  cutoff: string;
  rows: number;
  firstId: number;
  lastId: number;
  /** audit_logs only: the segment of the hash chain. */
  chain?: { firstSeq: number; lastSeq: number; firstPrevHash: string; lastHash: string };
  bytes: number;
  sha256: string;
  createdAt: string;
}

export interface LifecycleReport {
  archived: Array<{ table: LifecycleTable; workspaceId: string | null; rows: number; key: string }>;
  /** Maintenance run on the tables that lost rows (VACUUM (ANALYZE) on PostgreSQL, ANALYZE on PGlite). */
  maintenance: string[];
  jobRunsRemoved: number;
}

const pad = (n: number) => String(n).padStart(16, '0');
export const auditArchiveKey = (workspaceId: string, firstSeq: number, lastSeq: number) => `lifecycle/audit_logs/${workspaceId}/${pad(firstSeq)}-${pad(lastSeq)}.ndjson.gz`;
export const tableArchiveKey = (table: LifecycleTable, firstId: number, lastId: number) => `lifecycle/${table}/${pad(firstId)}-${pad(lastId)}.ndjson.gz`;
export const manifestKeyOf = (archiveKey: string) => archiveKey.replace(/\.ndjson\.gz$/, '.manifest.json');

export async function readManifest(platform: Platform, archiveKey: string): Promise<LifecycleManifest | null> {
  if (!(await platform.objects.head('archives', manifestKeyOf(archiveKey)))) return null;
  return getJson<LifecycleManifest>(platform.objects, 'archives', manifestKeyOf(archiveKey));
}

/**
 * Reads an archive back from the store: its bytes must match the manifest's size and SHA-256,
 * and `onRow` sees every row (parsed) in order. Throws SIQ_ARCHIVE_CORRUPT otherwise.
 */
export async function readArchive(platform: Platform, archiveKey: string, onRow: (row: Record<string, unknown>) => void): Promise<LifecycleManifest> {
  const manifest = await readManifest(platform, archiveKey);
  if (!manifest) throw new SiqError('SIQ_ARCHIVE_NOT_FOUND', `No manifest for ${archiveKey}.`);
  let rows = 0;
  const stored = await readGzipLines(platform.objects, 'archives', archiveKey, (line) => {
    rows++;
    onRow(JSON.parse(line) as Record<string, unknown>);
  });
  if (stored.trailing.trim()) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `${archiveKey} ends in the middle of a row.`);
  if (stored.bytes !== manifest.bytes || stored.sha256 !== manifest.sha256) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `${archiveKey} does not match its manifest's checksum.`);
  if (rows !== manifest.rows) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `${archiveKey} holds ${rows} rows, its manifest says ${manifest.rows}.`);
  return manifest;
}

async function putManifest(platform: Platform, archiveKey: string, manifest: LifecycleManifest): Promise<void> {
  await platform.objects.put('archives', manifestKeyOf(archiveKey), JSON.stringify(manifest, null, 2), { contentType: 'application/json' });
}

/** Archives, verifies and purges one segment of one audit chain (entries firstSeq..lastSeq). */
async function archiveAuditSegment(
  platform: Platform,
  workspaceId: string,
  from: { seq: number; prevHash: string },
  lastSeq: number,
  cutoff: Date,
): Promise<{ rows: number; key: string; lastHash: string }> {
  const { db } = platform;
  const key = auditArchiveKey(workspaceId, from.seq, lastSeq);
  // Written while the chain is checked: a segment that does not verify is never archived away.
  let expectedSeq = from.seq;
  let prevHash = from.prevHash;
  let firstId = 0;
  let lastId = 0;
  const check = (entry: AuditEntry) => {
    if (entry.seq !== expectedSeq) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `Audit chain ${workspaceId}: entry ${expectedSeq} is missing; nothing of it was archived or removed.`);
    const { id: _id, prevHash: p, hash, ...fields } = entry;
    if (p !== prevHash || entryHash(prevHash, fields) !== hash) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `Audit chain ${workspaceId}: entry ${entry.seq} does not verify; nothing of it was archived or removed. Run \`sentineliq audit verify\`.`);
    prevHash = hash;
    expectedSeq++;
  };
  const lines = (async function* () {
    let after = from.seq - 1;
    while (after < lastSeq) {
      const { rows } = await db.query<AuditRow>('SELECT * FROM audit_logs WHERE workspace_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT ' + READ_BATCH, [workspaceId, after, lastSeq]);
      if (rows.length === 0) break;
      for (const row of rows) {
        const entry = fromRow(row);
        check(entry);
        if (!firstId) firstId = entry.id;
        lastId = entry.id;
        yield `${JSON.stringify(entry)}\n`;
      }
      after = rows.at(-1)!.seq;
    }
  })();
  const written = await putGzipLines(platform.objects, 'archives', key, lines);
  if (expectedSeq !== lastSeq + 1) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `Audit chain ${workspaceId}: entries ${expectedSeq}..${lastSeq} are missing; nothing of it was removed.`);
  const lastHash = prevHash;
  const rows = lastSeq - from.seq + 1;
  await putManifest(platform, key, {
    format: 'siq-lifecycle-ndjson-gzip/1', table: 'audit_logs', workspaceId, cutoff: cutoff.toISOString(), rows, firstId, lastId,
    chain: { firstSeq: from.seq, lastSeq, firstPrevHash: from.prevHash, lastHash }, ...written, createdAt: new Date().toISOString(),
  });

  // Read back what the store holds: checksum, and the chain recomputed from the archive itself.
  let seq = from.seq;
  let hash = from.prevHash;
  const manifest = await readArchive(platform, key, (row) => {
    const { id: _id, prevHash: p, hash: h, ...fields } = row as unknown as AuditEntry;
    if (fields.seq !== seq || p !== hash || entryHash(hash, fields) !== h) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `${key}: entry ${seq} read back does not verify.`);
    hash = h;
    seq++;
  });
  if (seq !== lastSeq + 1 || hash !== lastHash || manifest.sha256 !== written.sha256) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `${key} read back does not hold entries ${from.seq}..${lastSeq}.`);

  await db.transaction(async (tx) => {
    // The same lock appends take: the chain does not move while it is cut.
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 42))', [`audit:${workspaceId}`]);
    const latest = await tx.query<{ through: number | null }>('SELECT max(archived_through_seq) AS through FROM audit_chain_anchors WHERE workspace_id = $1', [workspaceId]);
    if ((latest.rows[0]?.through ?? 0) !== from.seq - 1) throw new SiqError('SIQ_CONFLICT', `Audit chain ${workspaceId} was archived by another run meanwhile.`);
    await tx.exec("SET LOCAL siq.lifecycle_purge = 'on'");
    await tx.query(
      `INSERT INTO audit_chain_anchors (workspace_id, first_seq, archived_through_seq, archived_through_id, first_prev_hash, last_hash, entries, object_key, sha256)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [workspaceId, from.seq, lastSeq, lastId, from.prevHash, lastHash, rows, key, written.sha256],
    );
    const deleted = await tx.query('DELETE FROM audit_logs WHERE workspace_id = $1 AND seq >= $2 AND seq <= $3', [workspaceId, from.seq, lastSeq]);
    if (deleted.rowCount !== rows) throw new SiqError('SIQ_CONFLICT', `Audit chain ${workspaceId}: ${deleted.rowCount} rows matched, ${rows} were archived; nothing was removed.`);
  });
  return { rows, key, lastHash };
}

/**
 * Every audit chain: entries created before the cutoff are archived in segments and removed. The
 * newest entry of a chain always stays (appends continue the chain from it), so the cut is the
 * contiguous prefix up to the last due entry, but never the last entry itself.
 */
async function archiveAuditLogs(platform: Platform, cutoff: Date, report: LifecycleReport): Promise<string[]> {
  const { db } = platform;
  const problems: string[] = [];
  const { rows: chains } = await db.query<{ workspace_id: string; due: number; newest: number }>(
    `SELECT a.workspace_id, max(a.seq) FILTER (WHERE a.created_at < $1) AS due, max(a.seq) AS newest
       FROM audit_logs a GROUP BY a.workspace_id HAVING bool_or(a.created_at < $1)`,
    [cutoff],
  );
  for (const chain of chains) {
    const through = Math.min(chain.due, chain.newest - 1);
    const anchor = await db.query<{ archived_through_seq: number; last_hash: string }>(
      'SELECT archived_through_seq, last_hash FROM audit_chain_anchors WHERE workspace_id = $1 ORDER BY archived_through_seq DESC LIMIT 1',
      [chain.workspace_id],
    );
    let from = { seq: (anchor.rows[0]?.archived_through_seq ?? 0) + 1, prevHash: anchor.rows[0]?.last_hash ?? GENESIS_HASH };
    try {
      while (from.seq <= through) {
        const lastSeq = Math.min(through, from.seq + SEGMENT_ROWS - 1);
        const done = await archiveAuditSegment(platform, chain.workspace_id, from, lastSeq, cutoff);
        report.archived.push({ table: 'audit_logs', workspaceId: chain.workspace_id, rows: done.rows, key: done.key });
        from = { seq: lastSeq + 1, prevHash: done.lastHash };
      }
    } catch (err) {
      problems.push(`audit_logs ${chain.workspace_id}: ${(err as Error).message}`);
      platform.logger.error({ component: 'lifecycle', err, workspaceId: chain.workspace_id }, 'an audit chain could not be archived');
    }
  }
  return problems;
}

/** One table without a chain: due rows in id order, segment by segment. */
async function archiveTable(platform: Platform, spec: PlainTable, cutoff: Date, report: LifecycleReport): Promise<void> {
  const { db } = platform;
  const table = quoteIdentifier(spec.table);
  for (;;) {
    const { rows: due } = await db.query<{ id: number }>(`SELECT t.id FROM ${table} t WHERE t.created_at < $1 AND ${spec.condition} ORDER BY t.id LIMIT ${SEGMENT_ROWS}`, [cutoff]);
    if (due.length === 0) return;
    const ids = due.map((r) => r.id);
    const key = tableArchiveKey(spec.table, ids[0]!, ids.at(-1)!);
    const written = await putGzipLines(
      platform.objects,
      'archives',
      key,
      (async function* () {
        for (let i = 0; i < ids.length; i += READ_BATCH) {
          const { rows } = await db.query<{ id: number }>(`SELECT * FROM ${table} WHERE id = ANY($1::bigint[]) ORDER BY id`, [ids.slice(i, i + READ_BATCH)]);
          for (const row of rows) yield `${JSON.stringify(row)}\n`;
        }
      })(),
    );
    await putManifest(platform, key, {
      format: 'siq-lifecycle-ndjson-gzip/1', table: spec.table, workspaceId: null, cutoff: cutoff.toISOString(), rows: ids.length,
      firstId: ids[0]!, lastId: ids.at(-1)!, ...written, createdAt: new Date().toISOString(),
    });
    // Only what the stored archive holds is deleted: the ids read back must be exactly the due ones.
    let i = 0;
    await readArchive(platform, key, (row) => {
      if (Number(row.id) !== ids[i]) throw new SiqError('SIQ_ARCHIVE_CORRUPT', `${key}: row ${i + 1} read back is id ${String(row.id)}, expected ${ids[i]}.`);
      i++;
    });
    await db.transaction(async (tx) => {
      await tx.exec("SET LOCAL siq.lifecycle_purge = 'on'");
      const deleted = await tx.query(`DELETE FROM ${table} WHERE id = ANY($1::bigint[])`, [ids]);
      if (deleted.rowCount !== ids.length) throw new SiqError('SIQ_CONFLICT', `${spec.table}: ${deleted.rowCount} rows matched, ${ids.length} were archived; nothing was removed.`);
    });
    report.archived.push({ table: spec.table, workspaceId: null, rows: ids.length, key });
    if (ids.length < SEGMENT_ROWS) return;
  }
}

async function maintain(platform: Platform, table: string): Promise<string> {
  // VACUUM cannot run inside a transaction; the pool runs each statement on its own. PGlite is
  // one in-process connection: statistics are refreshed, space is left to its own reuse.
  const op = platform.db.kind === 'postgres' ? 'VACUUM (ANALYZE)' : 'ANALYZE';
  await platform.db.exec(`${op} ${quoteIdentifier(table)}`);
  return `${op} ${table}`;
}

/**
 * One lifecycle pass over every table with a retention (0 days: kept forever). Failures of one
 * table or chain do not stop the others; the pass then fails naming each, so the job's last run
 * shows it.
 */
export async function runLifecycle(platform: Platform, now: Date = new Date()): Promise<LifecycleReport> {
  const settings = platform.config.lifecycle;
  const report: LifecycleReport = { archived: [], maintenance: [], jobRunsRemoved: 0 };
  const problems: string[] = [];
  const cutoffOf = (days: number) => new Date(now.getTime() - days * DAY_MS);
  if (settings.auditDays > 0) problems.push(...(await archiveAuditLogs(platform, cutoffOf(settings.auditDays), report)));
  for (const spec of PLAIN_TABLES) {
    const days = spec.days(settings);
    if (days <= 0) continue;
    try {
      await archiveTable(platform, spec, cutoffOf(days), report);
    } catch (err) {
      problems.push(`${spec.table}: ${(err as Error).message}`);
      platform.logger.error({ component: 'lifecycle', err, table: spec.table }, 'a table could not be archived');
    }
  }
  const removed = await platform.db.query('DELETE FROM job_runs WHERE started_at < $1', [cutoffOf(JOB_RUNS_KEEP_DAYS)]);
  report.jobRunsRemoved = removed.rowCount;
  for (const table of new Set(report.archived.map((a) => a.table))) {
    try {
      report.maintenance.push(await maintain(platform, table));
    } catch (err) {
      platform.logger.warn({ component: 'lifecycle', err, table }, 'maintenance after the purge failed (autovacuum will catch up)');
    }
  }
  if (problems.length > 0) {
    const archived = report.archived.reduce((n, a) => n + a.rows, 0);
    throw new Error(`${problems.length} problem(s) (${archived} rows were archived and removed meanwhile): ${problems.join('; ')}`);
  }
  return report;
}

export interface MaintenanceReport {
  database: 'pglite' | 'postgres';
  /** Statements run, e.g. `VACUUM (ANALYZE) public.alerts`. */
  ran: string[];
  failed: Array<{ statement: string; error: string }>;
}

/**
 * Database maintenance. PostgreSQL: VACUUM (ANALYZE) of every table with many dead rows
 * (at least 1,000 and more than 10 % of its live rows), ANALYZE of tables changed that much since
 * their last analysis; each statement alone (VACUUM cannot run in a transaction) and bound by
 * DATABASE_STATEMENT_TIMEOUT_MS — a cancelled one is reported and left to autovacuum. PGlite:
 * ANALYZE of the whole database.
 */
export async function runMaintenance(platform: Platform): Promise<MaintenanceReport> {
  const { db } = platform;
  const report: MaintenanceReport = { database: db.kind, ran: [], failed: [] };
  const run = async (statement: string) => {
    try {
      await db.exec(statement);
      report.ran.push(statement);
    } catch (err) {
      report.failed.push({ statement, error: (err as Error).message });
    }
  };
  if (db.kind !== 'postgres') {
    await run('ANALYZE');
    return report;
  }
  const { rows } = await db.query<{ schema: string; name: string; vacuum: boolean }>(
    `SELECT schemaname AS schema, relname AS name, (n_dead_tup >= 1000 AND n_dead_tup > n_live_tup * 0.1) AS vacuum
       FROM pg_stat_user_tables
      WHERE (n_dead_tup >= 1000 AND n_dead_tup > n_live_tup * 0.1) OR (n_mod_since_analyze >= 1000 AND n_mod_since_analyze > n_live_tup * 0.1)
      ORDER BY n_dead_tup DESC`,
  );
  for (const row of rows) {
    const name = `"${row.schema.replace(/"/g, '""')}"."${row.name.replace(/"/g, '""')}"`;
    await run(`${row.vacuum ? 'VACUUM (ANALYZE)' : 'ANALYZE'} ${name}`);
  }
  if (report.failed.length > 0) platform.logger.warn({ component: 'lifecycle', failed: report.failed }, 'some maintenance statements failed (autovacuum will catch up)');
  return report;
}

/** Schedules the lifecycle and maintenance jobs (single-run across processes, listed in the admin API). */
export function startLifecycleJobs(platform: Platform): ScheduledJob[] {
  const { lifecycle } = platform.config;
  return [
    schedule(platform, LIFECYCLE_JOB, lifecycle.intervalMinutes * 60_000, () => runLifecycle(platform), { description: 'Archives append-only history past its retention to the archives bucket, verifies it, then removes it.' }),
    schedule(platform, MAINTENANCE_JOB, lifecycle.maintenanceIntervalMinutes * 60_000, () => runMaintenance(platform), { description: 'VACUUM (ANALYZE) / ANALYZE of tables with many dead or changed rows.' }),
  ];
}
