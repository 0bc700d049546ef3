import { defineConfig } from 'vitest/config';
import SummaryLineReporter from './test/summary-reporter.js';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    environment: 'node',
    reporters: ['default', new SummaryLineReporter()],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Contract suites start real servers (s3rver) and open real pools; a few files at a time keep a 2-core box responsive.
    maxWorkers: 2,
  },
});
