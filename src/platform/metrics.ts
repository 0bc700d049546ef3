import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The Prometheus registry of one platform instance, with the metrics every part shares. */
export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  dependencyUp: Gauge<'dependency'>;
}

export function createMetrics(): Metrics {
  // A registry per instance (not prom-client's global one), so tests can build many apps.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'siq_' });
  return {
    registry,
    httpDuration: new Histogram({
      name: 'siq_http_request_duration_seconds',
      help: 'HTTP request duration by route template and status code.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    dependencyUp: new Gauge({
      name: 'siq_dependency_up',
      help: '1 when the dependency answered its last health check, 0 when not.',
      labelNames: ['dependency'],
      registers: [registry],
    }),
  };
}
