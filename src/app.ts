import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from './config/load.js';
import { registerErrorHandling, sendError } from './http/error-handler.js';
import { healthRoutes } from './http/health.js';
import { systemRoutes } from './http/system.js';
import { parseLimits, type Limits } from './http/rate-limit.js';
import { alertRoutes } from './modules/alerts/routes.js';
import { detectionRoutes } from './modules/detect/routes.js';
import { startPlatformEventFeed } from './modules/detect/platform-events.js';
import { DetectionService } from './modules/detect/service.js';
import { AlertService } from './modules/alerts/service.js';
import { auditRoutes } from './modules/audit/routes.js';
import { backupRoutes } from './modules/backup/routes.js';
import { BackupService } from './modules/backup/service.js';
import { appendAudit } from './modules/audit/service.js';
import { identityRoutes } from './modules/identity/routes.js';
import { lifecycleRoutes } from './modules/lifecycle/routes.js';
import { evidenceRoutes } from './modules/evidence/routes.js';
import { EvidenceService } from './modules/evidence/service.js';
import { incidentRoutes } from './modules/incidents/routes.js';
import { IncidentService } from './modules/incidents/service.js';
import { IngestPipeline } from './modules/ingest/pipeline.js';
import { notifyRoutes } from './modules/notify/routes.js';
import { NotifyService } from './modules/notify/service.js';
import { elasticsearchSource } from './modules/ingest/sources/elasticsearch.js';
import { httpSource } from './modules/ingest/sources/http.js';
import { lokiSource } from './modules/ingest/sources/loki.js';
import { eventRoutes } from './modules/events/routes.js';
import { IdentityService } from './modules/identity/service.js';
import { policyRoutes } from './modules/policy/routes.js';
import { PolicyService } from './modules/policy/service.js';
import { workspaceRoutes } from './modules/workspaces/routes.js';
import { uploadRoutes } from './modules/uploads/routes.js';
import { UploadService } from './modules/uploads/service.js';
import { createPlatform, type Platform } from './platform/index.js';
import { createMailer, type Mailer } from './platform/mail.js';
import type { Logger } from './platform/log/logger.js';
import { registerLogShipperMetrics } from './platform/log/metrics.js';
import type { LogShipper } from './platform/log/shipper.js';
import { objectRoutes } from './platform/objects/routes.js';

declare module 'fastify' {
  interface FastifyInstance {
    platform: Platform;
    /** Set by the CLI when a shutdown signal arrived: new requests get 503 SIQ_SHUTTING_DOWN. */
    lifecycle: { shuttingDown: boolean };
    identity: IdentityService;
    policy: PolicyService;
    limits: Limits;
    mailer: Mailer;
    ingest: IngestPipeline;
    notify: NotifyService;
    alerts: AlertService;
    detection: DetectionService;
    incidents: IncidentService;
    /** Evidence of incidents with its chain of custody (files stored through app.uploads). */
    evidence: EvidenceService;
    /** Files of workspaces (logos, attachments, evidence) with the storage quota; other modules store files through it. */
    uploads: UploadService;
    /** Backups of the whole platform and their restore (platform admins; the schedule runs in `start`). */
    backups: BackupService;
    /** Every route registered, for tests that must cover all of them (tenant isolation, audit). */
    routeTable: Array<{ method: string; url: string; config: unknown }>;
  }
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface BuildOptions {
  /** Reuse an existing platform (tests); otherwise one is created from `config` and closed with the app. */
  platform?: Platform;
  logger: Logger;
  /** Log shippers whose counters /metrics reports. */
  logShippers?: LogShipper[];
}

// Incoming X-Request-Id values are echoed into logs and responses, so only plain tokens are kept.
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Builds the HTTP application and the platform services it runs on. Never listens: the CLI
 * calls `listen`, tests call `inject`.
 *
 * @example
 * const app = await buildApp(config, { logger });
 * const res = await app.inject({ method: 'GET', url: '/health' });
 */
export async function buildApp(config: Config, options: BuildOptions): Promise<FastifyInstance> {
  const platform = options.platform ?? (await createPlatform(config, options.logger));
  const ownsPlatform = !options.platform;

  const serverOptions: FastifyServerOptions & { https?: { cert: Buffer; key: Buffer } } = {
    loggerInstance: options.logger,
    bodyLimit: config.security.bodyLimit,
    trustProxy: config.security.trustProxy,
    requestIdHeader: false,
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    return503OnClosing: false,
    childLoggerFactory: (logger, bindings, opts, rawReq) => logger.child({ ...bindings, ip: rawReq.socket?.remoteAddress }, opts),
  };
  if (config.security.tls) {
    serverOptions.https = { cert: readFileSync(config.security.tls.certFile), key: readFileSync(config.security.tls.keyFile) };
  }
  const app = Fastify(serverOptions) as unknown as FastifyInstance;
  app.decorate('platform', platform);
  app.decorate('lifecycle', { shuttingDown: false });
  app.decorate('identity', new IdentityService(platform));
  app.decorate('policy', new PolicyService(platform));
  app.decorate('limits', parseLimits(config.security.rateLimits));
  app.decorate('mailer', createMailer(config, options.logger));
  app.decorate('routeTable', []);
  app.decorate('ingest', new IngestPipeline(platform, { maxQueuedEvents: config.ingest.queueEvents, batchSize: config.ingest.batchEvents, maxConsumerBacklog: config.detection.backlogEvents }));
  app.decorate('notify', new NotifyService(platform));
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) app.routeTable.push({ method, url: route.url, config: route.config });
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (app.lifecycle.shuttingDown) {
      reply.header('connection', 'close').header('retry-after', '5');
      return sendError(reply, 'SIQ_SHUTTING_DOWN');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    platform.metrics.httpDuration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  registerErrorHandling(app);

  // Every successful state-changing request lands in the audit log before its response leaves.
  app.addHook('onSend', async (request, reply, payload) => {
    const spec = request.routeOptions.config.audit;
    if (!spec || !STATE_CHANGING.has(request.method) || reply.statusCode >= 400) return payload;
    const auth = request.auth;
    await appendAudit(platform.db, {
      workspaceId: request.audit?.workspaceId ?? request.workspace?.id ?? null,
      userId: auth?.kind === 'user' ? auth.userId : null,
      userEmail: auth?.kind === 'user' ? auth.email : null,
      apiKeyId: auth?.kind === 'apikey' ? auth.apiKeyId : null,
      action: spec.action,
      resource: spec.resource,
      resourceId: request.audit?.resourceId ?? null,
      description: request.audit?.description ?? '',
      ip: request.ip,
      userAgent: request.headers['user-agent'] ?? null,
      requestId: String(request.id),
      metadata: request.audit?.metadata,
    });
    return payload;
  });

  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        baseUri: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        frameAncestors: ["'none'"],
        formAction: ["'self'"],
        ...(config.security.tls ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    referrerPolicy: { policy: 'no-referrer' },
  });
  await app.register(cors, {
    // An empty list means no cross-origin access at all, not "everyone".
    origin: config.security.corsOrigins.includes('*') ? true : config.security.corsOrigins,
    credentials: true,
    exposedHeaders: ['x-request-id', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset'],
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'SentinelIQ API', version: config.version, description: 'Errors use `{error:{code,message,requestId}}`; codes are listed in docs/errors.md.' },
      servers: [{ url: config.publicUrl }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs', staticCSP: true });

  await app.register(healthRoutes, { platform, isShuttingDown: () => app.lifecycle.shuttingDown });
  registerLogShipperMetrics(platform.metrics.registry, options.logShippers ?? []);
  app.get('/metrics', { schema: { tags: ['operations'], summary: 'Prometheus metrics', hide: false } }, async (_req, reply) => {
    return reply.type(platform.metrics.registry.contentType).send(await platform.metrics.registry.metrics());
  });
  await app.register(systemRoutes, { platform, prefix: '/api/v1' });
  await app.register(identityRoutes, { prefix: '/api/v1' });
  await app.register(workspaceRoutes, { prefix: '/api/v1' });
  await app.register(policyRoutes, { prefix: '/api/v1' });
  await app.register(auditRoutes, { prefix: '/api/v1' });
  await app.register(lifecycleRoutes, { prefix: '/api/v1' });
  app.decorate('uploads', new UploadService(platform));
  await app.register(uploadRoutes(app.uploads), { prefix: '/api/v1' });
  await app.register(notifyRoutes, { prefix: '/api/v1' });
  await app.register(httpSource(app.ingest), { prefix: '/api/v1' });
  await app.register(eventRoutes, { prefix: '/api/v1' });
  // A new alert queues its notifications in the same transaction (the outbox): none is lost or sent twice.
  app.decorate('alerts', new AlertService(platform, { onRaised: (tx, notice) => app.notify.enqueueForAlert(tx, notice).then(() => undefined) }));
  await app.register(alertRoutes, { prefix: '/api/v1' });
  app.decorate('incidents', new IncidentService(platform, app.alerts));
  await app.register(incidentRoutes, { prefix: '/api/v1' });
  app.decorate('evidence', new EvidenceService(platform, app.incidents, app.uploads));
  await app.register(evidenceRoutes, { prefix: '/api/v1' });
  // Committed events go on to detection, which raises alerts.
  app.decorate('detection', new DetectionService(platform, app.alerts));
  app.ingest.setConsumer(app.detection);
  // The platform's own security events are events of their workspaces too.
  const stopPlatformEvents = await startPlatformEventFeed(platform, app.ingest);
  await app.register(detectionRoutes, { prefix: '/api/v1' });
  app.decorate('backups', new BackupService(platform, { alerts: app.alerts }));
  await app.register(backupRoutes(app.backups), { prefix: '/api/v1' });
  await app.register(lokiSource(app.ingest));
  await app.register(elasticsearchSource(app.ingest));
  await app.register(objectRoutes(platform.objects));

  // Events accepted before shutdown are written before the database closes.
  app.addHook('onClose', async () => {
    await stopPlatformEvents();
    await app.ingest.close();
    await app.detection.idle();
    if (ownsPlatform) await platform.close();
  });
  return app;
}
