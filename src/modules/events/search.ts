import { SiqError } from '../../errors.js';
import type { Queryable } from '../../platform/db/types.js';
import { compileQuery, defaultSchema } from './query/compile.js';
import { parseQuery } from './query/parser.js';
import { eventDocSql } from './stored-doc.js';

/** Fewer matches than this count as rare (searched through the text index, then sorted). */
const RARE_LIMIT = 2000;

export interface SearchRange {
  workspaceId: string;
  query: string;
  from: Date;
  to: Date;
}

function where(r: SearchRange): { sql: string; params: unknown[] } {
  if (!(r.from < r.to)) throw new SiqError('SIQ_VALIDATION', '"from" must be before "to".');
  const compiled = compileQuery(parseQuery(r.query), { paramOffset: 3 });
  return { sql: `workspace_id = $1 AND ts >= $2 AND ts < $3 AND (${compiled.sql})`, params: [r.workspaceId, r.from, r.to, ...compiled.params] };
}

export interface EventView {
  id: string;
  timestamp: string;
  [field: string]: unknown;
}

/**
 * Events in a time range matching a query, newest first by default, paged with `searchAfter`
 * (the last event's [timestamp, id]) so deep pages cost the same as the first.
 */
export async function searchEvents(db: Queryable, r: SearchRange & { sort?: 'asc' | 'desc'; size?: number; searchAfter?: [string, string]; fields?: string[] }) {
  const { sql, params } = where(r);
  const size = Math.min(Math.max(r.size ?? 100, 1), 1000);
  const desc = (r.sort ?? 'desc') === 'desc';
  let cursor = '';
  if (r.searchAfter) {
    const [ts, id] = r.searchAfter;
    if (Number.isNaN(Date.parse(ts)) || !/^[0-9a-f-]{36}$/i.test(id)) throw new SiqError('SIQ_VALIDATION', 'searchAfter is [timestamp, id] from the last event of the previous page.');
    params.push(new Date(ts), id);
    cursor = ` AND (ts, id) ${desc ? '<' : '>'} ($${params.length - 1}::timestamptz, $${params.length}::uuid)`;
  }
  const order = desc ? 'ts DESC, id DESC' : 'ts ASC, id ASC';
  let statement = `SELECT id, ts, ${eventDocSql()} AS doc FROM events WHERE ${sql}${cursor} ORDER BY ${order} LIMIT ${size}`;
  // PostgreSQL cannot estimate how rare a word is, so for full-text and wildcard searches it may
  // walk the time index and filter millions of rows to find a needle. A capped count through
  // the text index tells rare from common. (SET LOCAL lasts until the end of the caller's
  // transaction: searches run in one.)
  if (/search @@|ILIKE/.test(sql)) {
    // The probe and a rare search may use neither the time index nor a sequential scan, which
    // leaves the text index (a bitmap scan).
    await db.exec('SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = off');
    const probe = await db.query<{ n: number }>(`SELECT count(*) AS n FROM (SELECT 1 FROM events WHERE ${sql}${cursor} LIMIT ${RARE_LIMIT}) hits`, params);
    if (probe.rows[0]!.n >= RARE_LIMIT) await db.exec('SET LOCAL enable_indexscan = on; SET LOCAL enable_seqscan = on');
    else {
      // A rare search finds its few rows first and sorts them afterwards: the subquery has no
      // order to keep (OFFSET 0 keeps the planner from merging it into the outer query), so the
      // time index has nothing to offer. Switching plans off is not enough on its own: from
      // PostgreSQL 18 (PGlite) a disabled index scan is still chosen when it looks cheaper.
      statement = `SELECT id, ts, doc FROM (SELECT id, ts, ${eventDocSql()} AS doc FROM events WHERE ${sql}${cursor} OFFSET 0) AS hits ORDER BY ${order} LIMIT ${size}`;
    }
  }
  const { rows } = await db.query<{ id: string; ts: Date; doc: Record<string, unknown> }>(statement, params);
  const events: EventView[] = rows.map((row) => {
    const fields = r.fields?.length ? Object.fromEntries(r.fields.filter((f) => f in row.doc).map((f) => [f, row.doc[f]])) : row.doc;
    return { id: row.id, timestamp: row.ts.toISOString(), ...fields };
  });
  const last = rows.at(-1);
  return { events, nextSearchAfter: rows.length === size && last ? [last.ts.toISOString(), last.id] : null };
}

/**
 * PostgreSQL compiles expressions of queries it expects to be expensive (JIT); for these
 * whole-range aggregates the compilation took 100–400 ms of a 1–2 s query at 5 M events and
 * saved less. Search runs each request in a transaction, which SET LOCAL lasts for.
 */
async function withoutJit(db: Queryable): Promise<void> {
  await db.exec('SET LOCAL jit = off');
}

export async function countEvents(db: Queryable, r: SearchRange): Promise<number> {
  const { sql, params } = where(r);
  await withoutJit(db);
  const { rows } = await db.query<{ n: number }>(`SELECT count(*) AS n FROM events WHERE ${sql}`, params);
  return rows[0]!.n;
}

const INTERVALS: Array<[string, number]> = [
  ['1 second', 1e3], ['5 seconds', 5e3], ['10 seconds', 1e4], ['30 seconds', 3e4], ['1 minute', 6e4], ['5 minutes', 3e5], ['10 minutes', 6e5],
  ['30 minutes', 18e5], ['1 hour', 36e5], ['3 hours', 108e5], ['12 hours', 432e5], ['1 day', 864e5], ['7 days', 6048e5],
];

/** The bucket size that gives at most `maxBuckets` buckets over the range. */
export function autoInterval(from: Date, to: Date, maxBuckets = 120): [string, number] {
  const span = to.getTime() - from.getTime();
  return INTERVALS.find(([, ms]) => span / ms <= maxBuckets) ?? INTERVALS.at(-1)!;
}

/** Event counts per time bucket; empty buckets are included so charts have no gaps. */
export async function histogram(db: Queryable, r: SearchRange & { maxBuckets?: number }) {
  const { sql, params } = where(r);
  const [interval, ms] = autoInterval(r.from, r.to, r.maxBuckets);
  params.push(interval);
  await withoutJit(db);
  // Buckets are counted in a hash table. Grouping directly by date_bin(ts) makes PostgreSQL expect
  // as many groups as timestamps (it cannot know there are at most maxBuckets) and sort every
  // matching row first; behind the fence (OFFSET 0) it assumes few groups and hashes.
  const { rows } = await db.query<{ bucket: Date; n: number }>(
    `SELECT bucket, count(*) AS n FROM (SELECT date_bin($${params.length}::interval, ts, TIMESTAMPTZ '2000-01-01T00:00:00Z') AS bucket FROM events WHERE ${sql} OFFSET 0) AS matched GROUP BY 1 ORDER BY 1`,
    params,
  );
  const counts = new Map(rows.map((row) => [row.bucket.getTime(), row.n]));
  const epoch = Date.UTC(2000, 0, 1);
  const buckets: Array<{ start: string; count: number }> = [];
  for (let t = r.from.getTime() - ((((r.from.getTime() - epoch) % ms) + ms) % ms); t < r.to.getTime(); t += ms) {
    buckets.push({ start: new Date(t).toISOString(), count: counts.get(t) ?? 0 });
  }
  return { interval, buckets };
}

/** The most frequent values of a field. */
export async function topTerms(db: Queryable, r: SearchRange & { field: string; size?: number }) {
  const { sql, params } = where(r);
  const size = Math.min(Math.max(r.size ?? 10, 1), 100);
  const column = defaultSchema[r.field];
  let expr: string;
  if (column) expr = column.type === 'ip' ? `host(${column.column})` : column.column;
  else {
    params.push(r.field);
    expr = `(doc ->> $${params.length}::text)`;
  }
  await withoutJit(db);
  const { rows } = await db.query<{ value: string | null; n: number }>(
    `SELECT ${expr}::text AS value, count(*) AS n FROM events WHERE ${sql} AND ${expr} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${size}`,
    params,
  );
  return { field: r.field, terms: rows.map((row) => ({ value: row.value, count: row.n })) };
}
