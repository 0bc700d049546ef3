import { randomUUID } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import { SiqError } from '../../errors.js';
import { encodeCopyRow } from '../../platform/db/copy-encoding.js';
import type { Platform } from '../../platform/index.js';
import { dayStart, PartitionManager } from '../events/partitions.js';
import { storedDocJson } from '../events/stored-doc.js';
import { normalize, RejectedEvent, type Flat, type NormalizedEvent } from './normalize.js';

/** One item a source parsed: an object to normalise, or a parse error for that item alone. */
export type RawItem = { value: unknown; extra?: Flat } | { error: string; message: string };

export type ItemResult = { status: 'stored' } | { status: 'rejected'; reason: string; message: string };

/** What happened to a source's events in one workspace; `received` is the sum of the others. */
export interface SourceCounters {
  received: number;
  stored: number;
  rejected: number;
  dropped: number;
  rejectedByReason: Record<string, number>;
}

type Outcome = 'stored' | 'rejected' | 'dropped';

/** Adds counts to `ingest_counters` (one row per workspace, source, outcome and reason). */
const COUNT_SQL = `INSERT INTO ingest_counters AS c (workspace_id, source, outcome, reason, events)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[]) ORDER BY 1, 2, 3, 4
ON CONFLICT (workspace_id, source, outcome, reason) DO UPDATE SET events = c.events + excluded.events, updated_at = now()`;

/** Counts by workspace, source, outcome and reason, as the parameters of COUNT_SQL. */
class Tally {
  private readonly counts = new Map<string, number>();

  add(workspaceId: string, source: string, outcome: Outcome, n: number, reason = ''): void {
    const key = JSON.stringify([workspaceId, source, outcome, reason]);
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  merge(other: Tally): void {
    for (const [key, n] of other.counts) this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  get empty(): boolean {
    return this.counts.size === 0;
  }

  /** Moves the counts out into a new tally, leaving this one empty. */
  take(): Tally {
    const taken = new Tally();
    taken.merge(this);
    this.counts.clear();
    return taken;
  }

  /** The statement that adds these counts to `ingest_counters`. */
  statement(): { sql: string; params: unknown[] } {
    const columns: unknown[][] = [[], [], [], [], []];
    for (const [key, n] of this.counts) {
      (JSON.parse(key) as string[]).forEach((v, i) => columns[i]!.push(v));
      columns[4]!.push(n);
    }
    return { sql: COUNT_SQL, params: columns };
  }
}

interface Pending {
  workspaceId: string;
  source: string;
  events: NormalizedEvent[];
  /** Event ids, given here so detection can reference what it matched. */
  ids: string[];
  resolve: (results: boolean[]) => void;
  reject: (err: unknown) => void;
}

export const EVENT_COLUMNS = ['id', 'workspace_id', 'ts', 'received_at', 'source', 'event_category', 'event_action', 'event_outcome', 'event_severity', 'host_name', 'source_ip', 'destination_ip', 'user_name', 'message', 'doc'];

function row(id: string, workspaceId: string, e: NormalizedEvent, receivedAt: Date | string): unknown[] {
  // The document goes as JSON text (a string is escaped for COPY like any text value).
  return [id, workspaceId, e.ts, receivedAt, e.source, e.category, e.action, e.outcome, e.severity, e.hostName, e.sourceIp, e.destinationIp, e.userName, e.message, storedDocJson(e)];
}

/**
 * The rows of a batch, made as COPY reads them. `received_at` is the `event.ingested` text
 * normalisation wrote (an ISO time PostgreSQL reads as is), not parsed back into a Date per event.
 */
function* rows(pending: Pending[]): Generator<unknown[]> {
  const fallback = new Date().toISOString();
  for (const p of pending) {
    for (let i = 0; i < p.events.length; i++) {
      const e = p.events[i]!;
      const ingested = e.doc['event.ingested'];
      yield row(p.ids[i]!, p.workspaceId, e, typeof ingested === 'string' && ingested ? ingested : fallback);
    }
  }
}

/** One event as a line of COPY text for EVENT_COLUMNS (benchmarks measure the server with it). */
export function eventCopyRow(id: string, workspaceId: string, e: NormalizedEvent, receivedAt: Date): string {
  return encodeCopyRow(row(id, workspaceId, e, receivedAt));
}

/** Receives events once they are committed (detection); its backlog counts towards push-back. */
export interface CommittedEventsConsumer {
  enqueue(workspaceId: string, events: Array<{ id: string; ts: Date; doc: Record<string, unknown> }>): void;
  readonly backlog: number;
}

export interface PipelineOptions {
  /** Events waiting to be written before sources are pushed back (HTTP 503, TCP pause). */
  maxQueuedEvents?: number;
  /** Events per COPY. */
  batchSize?: number;
  /** COPYs in flight at once on PostgreSQL (each on its own pooled connection); PGlite always 1. */
  writers?: number;
  /** Committed events go on to it (detection), in commit order. */
  consumer?: CommittedEventsConsumer;
  /** Consumer backlog beyond which sources are pushed back. */
  maxConsumerBacklog?: number;
}

/**
 * The single way events enter the store. Sources hand over parsed items; each is normalised
 * (or rejected alone, with a reason), queued, and written in COPY batches. A source's promise
 * resolves only after its events are committed, so an acknowledgement means durability. The
 * queue is bounded: when full, `ingest` throws SIQ_INGEST_BUSY and the source pushes back.
 * Every item is counted: received = stored + rejected + dropped.
 */
export class IngestPipeline {
  private readonly queue: Pending[] = [];
  private queued = 0;
  /** COPYs in flight. */
  private writers = 0;
  private readonly maxWriters: number;
  private closed = false;
  private readonly partitions: PartitionManager;
  /** Rejected and dropped counts not yet in `ingest_counters`; they go with the next COPY or flush. */
  private readonly unrecorded = new Tally();
  private readonly flushTimer: NodeJS.Timeout;
  private readonly maxQueued: number;
  private readonly batchSize: number;
  private readonly metric: Counter<'source' | 'workspace' | 'outcome'>;
  private readonly queueGauge: Gauge;
  private consumer: CommittedEventsConsumer | undefined;
  private readonly maxConsumerBacklog: number;

  constructor(private readonly platform: Platform, options: PipelineOptions = {}) {
    this.consumer = options.consumer;
    this.maxConsumerBacklog = options.maxConsumerBacklog ?? 100_000;
    this.partitions = new PartitionManager(platform.db);
    this.maxQueued = options.maxQueuedEvents ?? 50_000;
    this.batchSize = options.batchSize ?? 5_000;
    // PGlite is one connection on this thread: a second COPY would only wait for the first.
    this.maxWriters = platform.db.kind === 'pglite' ? 1 : Math.max(1, options.writers ?? 2);
    const registry = platform.metrics.registry;
    this.metric = (registry.getSingleMetric('siq_ingest_events_total') as Counter<'source' | 'workspace' | 'outcome'> | undefined)
      ?? new Counter({ name: 'siq_ingest_events_total', help: 'Events by source, workspace and outcome (received, stored, rejected, dropped).', labelNames: ['source', 'workspace', 'outcome'], registers: [registry] });
    this.queueGauge = (registry.getSingleMetric('siq_ingest_queue_events') as Gauge | undefined)
      ?? new Gauge({ name: 'siq_ingest_queue_events', help: 'Events waiting to be written.', registers: [registry] });
    this.flushTimer = setInterval(() => void this.flushCounts().catch(() => undefined), 1000);
    this.flushTimer.unref();
  }

  /**
   * Counts in /metrics (this process) and, except `received` and `stored` (recorded with the
   * COPY that stores them), towards `ingest_counters`.
   */
  private count(workspaceId: string, source: string, outcome: 'received' | Outcome, n: number, reason?: string): void {
    if (n === 0) return;
    if (outcome === 'rejected' || outcome === 'dropped') this.unrecorded.add(workspaceId, source, outcome, n, reason);
    this.metric.inc({ source, workspace: workspaceId, outcome }, n);
  }

  /** Records the rejected and dropped counts not yet in the database. */
  private async flushCounts(): Promise<void> {
    if (this.unrecorded.empty) return;
    const taken = this.unrecorded.take();
    const { sql, params } = taken.statement();
    try {
      await this.platform.db.query(sql, params);
    } catch (err) {
      this.unrecorded.merge(taken);
      throw err;
    }
  }

  /** Counts events a source had to drop (UDP under pressure) without queueing them. */
  countDropped(workspaceId: string, source: string, n: number): void {
    this.count(workspaceId, source, 'received', n);
    this.count(workspaceId, source, 'dropped', n);
  }

  /** Sets where committed events go next (detection). */
  setConsumer(consumer: CommittedEventsConsumer): void {
    this.consumer = consumer;
  }

  /** Whether a batch of `n` events would be refused right now (sources check before reading more). */
  isFull(n = 1): boolean {
    return this.queued + n > this.maxQueued || (this.consumer !== undefined && this.consumer.backlog > this.maxConsumerBacklog);
  }

  /** Normalises, queues and commits; resolves with one result per item, in order. */
  async ingest(workspaceId: string, source: string, items: RawItem[], receivedAt = new Date()): Promise<ItemResult[]> {
    if (this.closed) throw new SiqError('SIQ_SHUTTING_DOWN');
    if (this.isFull(items.length)) throw new SiqError('SIQ_INGEST_BUSY', undefined, { details: { queued: this.queued, limit: this.maxQueued } });
    this.count(workspaceId, source, 'received', items.length);
    const results: ItemResult[] = new Array(items.length);
    const events: NormalizedEvent[] = [];
    const positions: number[] = [];
    items.forEach((item, i) => {
      if ('error' in item) {
        results[i] = { status: 'rejected', reason: item.error, message: item.message };
        this.count(workspaceId, source, 'rejected', 1, item.error);
        return;
      }
      try {
        // Sizes are checked where the bytes are (sources limit lines and bodies), not by
        // serialising every event a second time here.
        events.push(normalize(item.value as Record<string, unknown>, source, receivedAt, item.extra));
        positions.push(i);
      } catch (err) {
        const reason = err instanceof RejectedEvent ? err.reason : 'invalid';
        results[i] = { status: 'rejected', reason, message: (err as Error).message };
        this.count(workspaceId, source, 'rejected', 1, reason);
      }
    });
    if (events.length > 0) {
      let stored: boolean[];
      try {
        stored = await new Promise<boolean[]>((resolve, reject) => {
          this.queue.push({ workspaceId, source, events, ids: events.map(() => randomUUID()), resolve, reject });
          this.queued += events.length;
          this.queueGauge.set(this.queued);
          this.drain();
        });
      } catch (err) {
        // Not stored (the database went away): counted as dropped, and the caller is told, so
        // the sender can resend.
        this.count(workspaceId, source, 'dropped', events.length);
        throw err;
      }
      stored.forEach((ok, k) => {
        results[positions[k]!] = ok ? { status: 'stored' } : { status: 'rejected', reason: 'store_error', message: 'the database refused this event' };
      });
      const okCount = stored.filter(Boolean).length;
      this.count(workspaceId, source, 'stored', okCount);
      this.count(workspaceId, source, 'rejected', stored.length - okCount, stored.length - okCount ? 'store_error' : undefined);
    }
    return results;
  }

  /**
   * Starts COPYs while there is work and a free writer. Each COPY is its own transaction and
   * each submission is resolved only after the COPY holding it committed, so running several
   * at once keeps acknowledgement-after-commit; it lets the server work on one batch (on its
   * own core) while this process parses, normalises and encodes the next.
   */
  private drain(): void {
    while (this.queue.length > 0 && this.writers < this.maxWriters) {
      const batch: Pending[] = [];
      let size = 0;
      while (this.queue.length > 0 && (size === 0 || size + this.queue[0]!.events.length <= this.batchSize)) {
        const next = this.queue.shift()!;
        batch.push(next);
        size += next.events.length;
      }
      this.writers++;
      void this.write(batch).catch((err: unknown) => {
        // write() settles every submission itself; this is for the unforeseen, so no source waits forever.
        for (const p of batch) p.reject(err);
      }).finally(() => {
        this.writers--;
        this.queued -= size;
        this.queueGauge.set(this.queued);
        this.drain();
      });
    }
  }

  /**
   * One COPY, with the count of what it stores (and the rejected and dropped counts waiting to
   * be recorded) in the same transaction.
   */
  private async copy(pending: Pending[]): Promise<void> {
    const times = new Set<number>();
    for (const p of pending) for (const e of p.events) times.add(dayStart(e.ts));
    await this.partitions.ensureFor(times);
    const waiting = this.unrecorded.take();
    const counts = new Tally();
    counts.merge(waiting);
    for (const p of pending) counts.add(p.workspaceId, p.source, 'stored', p.events.length);
    try {
      await this.platform.db.copyFrom('events', EVENT_COLUMNS, rows(pending), { then: counts.statement() });
    } catch (err) {
      // Nothing was stored; the rejected and dropped counts wait for the next chance.
      this.unrecorded.merge(waiting);
      throw err;
    }
  }

  /**
   * Writes a batch; when COPY refuses it, writes each submission and then each event alone, so
   * one bad event fails alone.
   */
  private async write(batch: Pending[]): Promise<void> {
    try {
      await this.copy(batch);
      for (const p of batch) {
        this.committed(p, p.events.map(() => true));
        p.resolve(p.events.map(() => true));
      }
      return;
    } catch (err) {
      // A partition may have been dropped by retention since we created it: look again.
      this.partitions.reset();
      if (!(await this.databaseUp())) {
        for (const p of batch) p.reject(new SiqError('SIQ_DEPENDENCY_DOWN', 'The database is unreachable; nothing of this request was stored.'));
        return;
      }
      this.platform.logger.debug({ component: 'ingest', err: (err as Error).message }, 'a batch was refused; writing its parts alone');
    }
    for (const p of batch) {
      try {
        await this.copy([p]);
        this.committed(p, p.events.map(() => true));
        p.resolve(p.events.map(() => true));
        continue;
      } catch {
        // fall through to one event at a time
      }
      const results: boolean[] = [];
      for (const [i, e] of p.events.entries()) {
        try {
          await this.copy([{ ...p, events: [e], ids: [p.ids[i]!] }]);
          results.push(true);
        } catch (err) {
          this.platform.logger.warn({ component: 'ingest', err: (err as Error).message }, 'an event was refused by the database');
          results.push(false);
        }
      }
      this.committed(p, results);
      p.resolve(results);
    }
  }

  /** Hands what was stored to the consumer; its trouble never reaches the source. */
  private committed(p: Pending, stored: boolean[]): void {
    if (!this.consumer) return;
    const events = p.events.flatMap((e, i) => (stored[i] ? [{ id: p.ids[i]!, ts: e.ts, doc: e.doc }] : []));
    try {
      this.consumer.enqueue(p.workspaceId, events);
    } catch (err) {
      this.platform.logger.error({ component: 'ingest', err }, 'committed events could not be handed to detection');
    }
  }

  private async databaseUp(): Promise<boolean> {
    return this.platform.db.ping().then(() => true, () => false);
  }

  /**
   * Counters per source for one workspace, over every process and restart. An event counts once
   * its outcome is known; events still queued are in `queuedEvents`.
   */
  async stats(workspaceId: string): Promise<Record<string, SourceCounters>> {
    await this.flushCounts();
    const { rows: counted } = await this.platform.db.query<{ source: string; outcome: Outcome; reason: string; events: number }>(
      'SELECT source, outcome, reason, events FROM ingest_counters WHERE workspace_id = $1 ORDER BY source, outcome, reason', [workspaceId]);
    const out: Record<string, SourceCounters> = {};
    for (const r of counted) {
      const c = (out[r.source] ??= { received: 0, stored: 0, rejected: 0, dropped: 0, rejectedByReason: {} });
      c[r.outcome] += r.events;
      c.received += r.events;
      if (r.outcome === 'rejected') c.rejectedByReason[r.reason] = (c.rejectedByReason[r.reason] ?? 0) + r.events;
    }
    return out;
  }

  get queuedEvents(): number {
    return this.queued;
  }

  /** Stops taking events, waits for the queue to be written and records the last counts. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queued > 0 || this.writers > 0) await new Promise((r) => setTimeout(r, 20));
    clearInterval(this.flushTimer);
    await this.flushCounts().catch((err: unknown) => this.platform.logger.warn({ component: 'ingest', err: (err as Error).message }, 'the last ingest counts could not be recorded'));
  }
}
