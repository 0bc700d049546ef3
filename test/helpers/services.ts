/**
 * Real services for contract tests. A suite against PostgreSQL or Redis runs when its URL is
 * given (TEST_DATABASE_URL, TEST_REDIS_URL) and is skipped otherwise; `.ci/run` always gives
 * both and fails when one is unreachable, so CI never skips.
 */
export const testDatabaseUrl = requiredInCi('TEST_DATABASE_URL');
export const testRedisUrl = requiredInCi('TEST_REDIS_URL');

function requiredInCi(name: string): string | undefined {
  const value = process.env[name] || undefined;
  if (!value && process.env.CI === 'true') throw new Error(`${name} must be set in CI: contract suites never skip there`);
  return value;
}

/** A short unique name for per-test databases, key prefixes and buckets. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}
