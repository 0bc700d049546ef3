import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { createLogger, createLoggerFromConfig } from './logger.js';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>>; raw: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, raw: () => text, lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const flushed = () => new Promise((r) => setImmediate(r));

describe('createLogger', () => {
  it('writes JSON lines with the standard fields, and context from child loggers', async () => {
    const out = capture();
    const logger = createLogger({ level: 'info', env: 'test', version: '9.9.9', destination: out.stream });
    logger.child({ component: 'ingest', workspaceId: 'ws-1', userId: 'u-1', requestId: 'r-1', ip: '10.0.0.1' }).info('batch stored');
    logger.debug('below the level');
    await flushed();
    const [line, ...rest] = out.lines();
    expect(rest).toHaveLength(0);
    expect(line).toMatchObject({ level: 'info', message: 'batch stored', service: 'sentineliq', environment: 'test', version: '9.9.9', component: 'ingest', workspaceId: 'ws-1', userId: 'u-1', requestId: 'r-1', ip: '10.0.0.1' });
    expect(new Date(line!.timestamp as string).toISOString()).toBe(line!.timestamp);
  });

  it('redacts passwords, bearer tokens and cookies wherever they appear', async () => {
    const out = capture();
    const logger = createLogger({ level: 'info', env: 'test', destination: out.stream });
    logger.info({ password: 'hunter2', user: { name: 'bob', apiKey: 'ak-123' } }, 'sign-in attempt');
    logger.info('retrying with Authorization: Bearer eyTok3n-value-123 and password=hunter3');
    logger.info({ req: { headers: { authorization: 'Basic dXNlcjpwYXNz', cookie: 'sid=s3ss10n' } } }, 'incoming request');
    logger.error({ err: new Error('connect failed for postgres://siq:dbpa55@db/siq') }, 'database down');
    await flushed();
    const raw = out.raw();
    for (const secret of ['hunter2', 'hunter3', 'ak-123', 'eyTok3n', 'dXNlcjpwYXNz', 's3ss10n', 'dbpa55']) expect(raw).not.toContain(secret);
    expect(raw.match(/\[Redacted\]/g)!.length).toBeGreaterThanOrEqual(7);
    const [first] = out.lines();
    expect(first).toMatchObject({ password: '[Redacted]', user: { name: 'bob', apiKey: '[Redacted]' } });
  });
});

describe('createLoggerFromConfig', () => {
  it('adds a shipper per configured sink', async () => {
    const { config } = loadConfig({ LOKI_URL: 'http://127.0.0.1:9', LOGSTASH_HOST: '127.0.0.1', LOGSTASH_PROTOCOL: 'udp', LOGSTASH_PORT: '9', LOG_LEVEL: 'warn' });
    const out = capture();
    const configured = createLoggerFromConfig(config, out.stream);
    expect(configured.shippers.map((s) => s.sink)).toEqual(['loki', 'logstash-udp']);
    configured.logger.warn('shipped');
    await flushed();
    expect(configured.shippers.every((s) => s.stats().buffered + s.stats().sent === 1)).toBe(true);
    await configured.close();
  });
});
