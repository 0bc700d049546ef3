// Waits up to 30 s for the PostgreSQL and Redis that the tests use; exits 1 naming any that
// stay unreachable, so CI fails instead of skipping their contract suites.
import pg from 'pg';
import Redis from 'ioredis';

const quiet = process.argv.includes('--quiet');
const deadline = Date.now() + (quiet ? 3000 : 30000);
const checks = {
  PostgreSQL: async () => {
    const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL, connectionTimeoutMillis: 2000 });
    await client.connect();
    await client.query('SELECT 1');
    await client.end();
  },
  Redis: async () => {
    const redis = new Redis(process.env.TEST_REDIS_URL, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    try {
      await redis.connect();
      await redis.ping();
    } finally {
      redis.disconnect();
    }
  },
};

let failed = false;
for (const [name, check] of Object.entries(checks)) {
  let lastError;
  for (;;) {
    try {
      await check();
      if (!quiet) console.log(`${name} is up`);
      lastError = undefined;
      break;
    } catch (err) {
      lastError = err;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  if (lastError) {
    failed = true;
    if (!quiet) console.error(`${name} is unreachable: ${lastError.message}`);
  }
}
process.exit(failed ? 1 : 0);
