import { quoteIdentifier, type Database, type Queryable } from '../../platform/db/types.js';

const DAY_MS = 86_400_000;

/**
 * The text index's pending list, in kB (PostgreSQL's default is 4 MB). New entries go to this
 * list and are merged into the index in bulk when it is full: larger merges cost less per entry.
 * With 32 MB the server alone took 46 % more Windows events per second (bench/RESULTS.md); a
 * search reads the unmerged list too, which costs it milliseconds.
 */
export const TEXT_INDEX_PENDING_KB = 32_768;

/** Sets the pending list of the GIN (text) indexes of partition `name` (a trusted identifier). */
export async function tuneTextIndex(tx: Queryable, name: string): Promise<void> {
  const { rows } = await tx.query<{ index: string }>(
    "SELECT c.relname AS index FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = $1::regclass AND am.amname = 'gin'", [name]);
  for (const { index } of rows) await tx.exec(`ALTER INDEX ${quoteIdentifier(index)} SET (gin_pending_list_limit = ${TEXT_INDEX_PENDING_KB})`);
}

/** `events_p20261122` for the UTC day holding `time`. */
export function partitionName(time: Date | number): string {
  const d = new Date(typeof time === 'number' ? time : time.getTime());
  return `events_p${d.toISOString().slice(0, 10).replace(/-/g, '')}`;
}

export function dayStart(time: Date | number): number {
  const ms = typeof time === 'number' ? time : time.getTime();
  return ms - (((ms % DAY_MS) + DAY_MS) % DAY_MS);
}

/**
 * Creates the daily partitions a batch needs before it is written. Known partitions are
 * remembered per database, so a steady stream costs no catalogue query; creation is idempotent
 * and serialised by an advisory lock across processes.
 */
export class PartitionManager {
  private readonly known = new Set<string>();

  constructor(private readonly db: Database) {}

  async ensureFor(times: Iterable<number>): Promise<void> {
    const missing = new Map<string, number>();
    for (const t of times) {
      const name = partitionName(t);
      if (!this.known.has(name) && !missing.has(name)) missing.set(name, dayStart(t));
    }
    for (const [name, start] of missing) {
      await this.db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 3))', [name]);
        const exists = await tx.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [name]);
        if (!exists.rows[0]?.t) {
          const from = new Date(start).toISOString();
          const to = new Date(start + DAY_MS).toISOString();
          // Names and bounds are derived from numbers above, never from input text.
          await tx.exec(`CREATE TABLE ${name} PARTITION OF events FOR VALUES FROM ('${from}') TO ('${to}')`);
          await tuneTextIndex(tx, name);
        }
      });
      this.known.add(name);
    }
  }

  /** Daily partitions that exist, oldest first, with their day. */
  async list(): Promise<Array<{ name: string; day: string }>> {
    const { rows } = await this.db.query<{ name: string }>(
      "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events' ORDER BY c.relname",
    );
    return rows.filter((r) => /^events_p\d{8}$/.test(r.name)).map((r) => ({ name: r.name, day: `${r.name.slice(8, 12)}-${r.name.slice(12, 14)}-${r.name.slice(14, 16)}` }));
  }

  /** Forgets what it knew (retention may have dropped partitions since). */
  reset(): void {
    this.known.clear();
  }
}
