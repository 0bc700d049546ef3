import type { FastifyInstance } from 'fastify';
import { buildApp } from '../app.js';
import type { Config } from '../config/load.js';
import { recordStart } from '../platform/index.js';
import { startConfiguredListeners } from '../modules/ingest/listeners.js';
import { runRetention } from '../modules/events/retention.js';
import { scheduleBackups } from '../modules/backup/service.js';
import { startLifecycleJobs } from '../modules/lifecycle/service.js';
import { startNotificationWorker } from '../modules/notify/service.js';
import { schedule } from '../platform/jobs/scheduler.js';
import { createLoggerFromConfig } from '../platform/log/logger.js';

/**
 * Starts the platform and serves until SIGTERM/SIGINT. Shutdown stops accepting connections,
 * lets in-flight requests finish, closes pools and log shippers, and exits; if that takes longer
 * than SHUTDOWN_TIMEOUT_MS the process exits anyway (code 1) so an orchestrator never waits forever.
 */
export async function startCommand(config: Config, warnings: string[]): Promise<FastifyInstance> {
  const { logger, shippers, close: closeLogs } = createLoggerFromConfig(config);
  for (const warning of warnings) logger.warn({ component: 'config' }, warning);

  const app = await buildApp(config, { logger, logShippers: shippers });
  const instance = await recordStart(app.platform.db);
  await app.identity.bootstrapAdmins();
  await app.listen({ host: config.host, port: config.port });
  const listeners = await startConfiguredListeners(config, app.ingest, logger);
  const retention = schedule(app.platform, 'event-retention', config.ingest.retentionIntervalMinutes * 60_000, () => runRetention(app.platform));
  const notifications = startNotificationWorker(app.platform, app.notify);
  const backups = config.backup.schedule ? scheduleBackups(app.platform, app.backups, config.backup.schedule) : null;
  const lifecycleJobs = startLifecycleJobs(app.platform);
  const scheme = config.security.tls ? 'https' : 'http';
  const shownHost = config.host === '0.0.0.0' || config.host === '127.0.0.1' || config.host === '::' ? 'localhost' : config.host;
  logger.info(
    { component: 'server', database: app.platform.db.kind, cache: app.platform.cache.kind, objectStore: app.platform.objects.kind, instanceId: instance.id, startCount: instance.startCount },
    `SentinelIQ ${config.version} listening on ${scheme}://${shownHost}:${config.port} (${config.env})`,
  );

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ component: 'server', signal }, 'shutting down: finishing in-flight requests');
    app.lifecycle.shuttingDown = true;
    const timer = setTimeout(() => {
      logger.error({ component: 'server' }, `shutdown took longer than ${config.shutdownTimeoutMs} ms; exiting anyway`);
      void closeLogs().finally(() => process.exit(1));
    }, config.shutdownTimeoutMs);
    timer.unref();
    try {
      // Listeners first: no new events, then the HTTP server drains and the queue is written.
      retention.stop();
      notifications.stop();
      backups?.stop();
      for (const job of lifecycleJobs) job.stop();
      await Promise.all(listeners.map((l) => l.close()));
      await app.close();
      logger.info({ component: 'server' }, 'stopped');
      await closeLogs();
      clearTimeout(timer);
      process.exit(0);
    } catch (err) {
      logger.error({ component: 'server', err }, 'shutdown failed');
      await closeLogs();
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  return app;
}
