/**
 * Which backups to keep: a pure function of the list of backups and the time, so it is tested
 * without storage. Grandfather-father-son works like restic's `--keep-daily/weekly/monthly`:
 * for each of the N most recent days (ISO weeks, months, in UTC) that have a verified backup,
 * the newest verified backup of that period is kept; a backup kept by several rules counts once.
 * A flat policy keeps every verified backup younger than N days.
 *
 * Safety rules on top: nothing is deleted unless at least one backup is verified; the newest
 * verified backup is always kept; backups newer than the newest verified one (still running or
 * not yet verified) are kept; a failed backup is deleted once a newer one has been verified.
 */
export interface BackupRecord {
  id: string;
  createdAt: Date;
  /** true: verified; false: verification failed; null: not verified (yet). */
  verified: boolean | null;
}

export type RetentionPolicy =
  | { kind: 'gfs'; daily: number; weekly: number; monthly: number }
  | { kind: 'days'; days: number };

export interface RetentionDecision {
  keep: string[];
  delete: string[];
}

const dayKey = (d: Date) => d.toISOString().slice(0, 10);
const monthKey = (d: Date) => d.toISOString().slice(0, 7);

/** ISO 8601 week (Monday start) as `YYYY-Www`, in UTC. */
export function isoWeekKey(d: Date): string {
  const date = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const weekday = date.getUTCDay() || 7; // Monday 1 … Sunday 7
  date.setUTCDate(date.getUTCDate() + 4 - weekday); // the Thursday of this week decides the year
  const yearStart = Date.UTC(date.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((date.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${date.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

function newestPerPeriod(verified: BackupRecord[], keyOf: (d: Date) => string, periods: number): string[] {
  const kept: string[] = [];
  const seen = new Set<string>();
  for (const b of verified) {
    if (seen.size >= periods) break;
    const key = keyOf(b.createdAt);
    if (seen.has(key)) continue;
    seen.add(key);
    kept.push(b.id);
  }
  return kept;
}

export function decideRetention(backups: readonly BackupRecord[], now: Date, policy: RetentionPolicy): RetentionDecision {
  const newestFirst = [...backups].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.id.localeCompare(a.id));
  const verified = newestFirst.filter((b) => b.verified === true);
  if (verified.length === 0) return { keep: newestFirst.map((b) => b.id), delete: [] };
  const newestVerified = verified[0]!;

  const keep = new Set<string>([newestVerified.id]);
  for (const b of newestFirst) if (b.createdAt.getTime() > newestVerified.createdAt.getTime()) keep.add(b.id);

  if (policy.kind === 'days') {
    const cutoff = now.getTime() - policy.days * 86_400_000;
    for (const b of verified) if (b.createdAt.getTime() >= cutoff) keep.add(b.id);
  } else {
    for (const id of newestPerPeriod(verified, dayKey, policy.daily)) keep.add(id);
    for (const id of newestPerPeriod(verified, isoWeekKey, policy.weekly)) keep.add(id);
    for (const id of newestPerPeriod(verified, monthKey, policy.monthly)) keep.add(id);
  }
  return {
    keep: newestFirst.filter((b) => keep.has(b.id)).map((b) => b.id),
    delete: newestFirst.filter((b) => !keep.has(b.id)).map((b) => b.id),
  };
}
