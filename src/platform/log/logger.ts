import { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import type { Config } from '../../config/load.js';
import { readPackageVersion } from '../../config/version.js';
import { redactLine } from './redact.js';
import { LogstashTcpShipper, LogstashUdpShipper, LokiShipper, type LogShipper } from './shipper.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: LevelWithSilent;
  env: string;
  service?: string;
  version?: string;
  /** Where lines go besides the shippers; stdout by default. */
  destination?: NodeJS.WritableStream;
  shippers?: LogShipper[];
}

/**
 * Every finished line passes through here: redacted once, then written to the destination and
 * handed to each shipper. Shippers only buffer, so a slow or dead sink never slows a request.
 */
class FanOut extends Writable {
  constructor(private readonly destination: NodeJS.WritableStream, private readonly shippers: LogShipper[]) {
    super({ decodeStrings: false });
  }

  override _write(chunk: string | Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    const lines = text.split('\n').filter(Boolean).map(redactLine);
    const out = `${lines.join('\n')}\n`;
    for (const shipper of this.shippers) for (const line of lines) shipper.write(line);
    this.destination.write(out);
    callback();
  }
}

/**
 * The platform's structured logger: JSON lines with `timestamp` (ISO 8601, UTC), `level` (as a
 * word), `message`, and `service`, `environment`, `version` on every line. Context fields
 * (`component`, `workspaceId`, `userId`, `requestId`, `ip`) come from child loggers.
 * Secrets are redacted wherever they appear (see redact.ts).
 *
 * @example
 * const log = createLogger({ level: 'info', env: 'development' }).child({ component: 'ingest' });
 * log.info({ workspaceId }, 'batch stored');
 */
export function createLogger(options: LoggerOptions): Logger {
  const stream = new FanOut(options.destination ?? process.stdout, options.shippers ?? []);
  return pino(
    {
      level: options.level,
      messageKey: 'message',
      errorKey: 'err',
      base: { service: options.service ?? 'sentineliq', environment: options.env, version: options.version ?? readPackageVersion() },
      timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream as unknown as DestinationStream,
  );
}

export interface ConfiguredLogger {
  logger: Logger;
  shippers: LogShipper[];
  /** Sends what the shippers still hold (bounded wait) and stops them. */
  close(): Promise<void>;
}

/** The logger as configured: stdout plus Loki and/or Logstash when LOKI_URL / LOGSTASH_HOST are set. */
export function createLoggerFromConfig(config: Config, destination?: NodeJS.WritableStream): ConfiguredLogger {
  const shippers: LogShipper[] = [];
  const capacity = config.log.shipBuffer;
  if (config.log.lokiUrl) shippers.push(new LokiShipper(config.log.lokiUrl, { service: 'sentineliq', environment: config.env }, { capacity }));
  if (config.log.logstash) {
    const { host, port, protocol } = config.log.logstash;
    shippers.push(protocol === 'udp' ? new LogstashUdpShipper(host, port, { capacity }) : new LogstashTcpShipper(host, port, { capacity }));
  }
  const logger = createLogger({ level: config.log.level, env: config.env, version: config.version, destination, shippers });
  return {
    logger,
    shippers,
    async close() {
      await Promise.all(shippers.map((s) => s.close(2000)));
    },
  };
}
