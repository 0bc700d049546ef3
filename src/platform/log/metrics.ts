import { Gauge, type Registry } from 'prom-client';
import type { LogShipper } from './shipper.js';

/** Log shipping counters, read from each shipper when Prometheus scrapes. */
export function registerLogShipperMetrics(registry: Registry, shippers: LogShipper[]): void {
  const series: Array<[string, string, (s: ReturnType<LogShipper['stats']>) => number]> = [
    ['siq_log_ship_sent_total', 'Log lines delivered to the sink.', (s) => s.sent],
    ['siq_log_ship_dropped_total', 'Log lines dropped because the buffer was full or the line could not be sent.', (s) => s.dropped],
    ['siq_log_ship_buffered', 'Log lines waiting for the sink.', (s) => s.buffered],
    ['siq_log_ship_failures_total', 'Failed deliveries to the sink.', (s) => s.failures],
  ];
  for (const [name, help, read] of series) {
    new Gauge({
      name,
      help,
      labelNames: ['sink'],
      registers: [registry],
      collect() {
        for (const shipper of shippers) this.set({ sink: shipper.sink }, read(shipper.stats()));
      },
    });
  }
}
