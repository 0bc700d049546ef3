/**
 * Real services for contract tests. A suite against PostgreSQL or Redis runs when its URL is
 * given (TEST_DATABASE_URL, TEST_REDIS_URL) and is skipped otherwise; `.ci/run` always gives
 * both and fails when one is unreachable, so CI never skips.
 */
export const testDatabaseUrl = process.env.TEST_DATABASE_URL || undefined;
export const testRedisUrl = process.env.TEST_REDIS_URL || undefined;

/** A short unique name for per-test databases, key prefixes and buckets. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}
