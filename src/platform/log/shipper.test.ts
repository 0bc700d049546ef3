import { createSocket } from 'node:dgram';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../../test/helpers/ports.js';
import { registerLogShipperMetrics } from './metrics.js';
import { LogstashTcpShipper, LogstashUdpShipper, LokiShipper } from './shipper.js';

const fast = { flushIntervalMs: 20, minBackoffMs: 20, maxBackoffMs: 100 };

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface LokiPush {
  authorization?: string;
  body: { streams: Array<{ stream: Record<string, string>; values: Array<[string, string]> }> };
}

function startLoki(port: number, pushes: LokiPush[], respond = true): Promise<HttpServer> {
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (!respond) return; // hang: never answer
      if (req.url !== '/loki/api/v1/push' || req.method !== 'POST') return void res.writeHead(404).end();
      pushes.push({ authorization: req.headers.authorization, body: JSON.parse(body) as LokiPush['body'] });
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

const line = (i: number, level = 'info') => JSON.stringify({ level, timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), message: `line ${i}` });

describe('LokiShipper', () => {
  it('pushes batches grouped by level, with credentials from the URL as Basic auth', async () => {
    const pushes: LokiPush[] = [];
    const port = await freePort();
    const server = await startLoki(port, pushes);
    const shipper = new LokiShipper(`http://ship:pa55@127.0.0.1:${port}`, { service: 'sentineliq', environment: 'test' }, { capacity: 100, ...fast });
    try {
      shipper.write(line(1));
      shipper.write(line(2, 'error'));
      shipper.write(line(3));
      await eventually(() => shipper.stats().sent === 3);
      const values = pushes.flatMap((p) => p.body.streams);
      expect(values.find((s) => s.stream.level === 'info')!.values).toEqual([
        [`${Date.UTC(2026, 0, 1, 0, 0, 1)}000000`, line(1)],
        [`${Date.UTC(2026, 0, 1, 0, 0, 3)}000000`, line(3)],
      ]);
      expect(values.find((s) => s.stream.level === 'error')!.stream).toEqual({ service: 'sentineliq', environment: 'test', level: 'error' });
      expect(pushes[0]!.authorization).toBe(`Basic ${Buffer.from('ship:pa55').toString('base64')}`);
      expect(shipper.stats()).toMatchObject({ sent: 3, dropped: 0, buffered: 0, failures: 0 });
    } finally {
      await shipper.close();
      server.close();
    }
  });

  it('buffers while Loki is down, drops exactly what exceeds the buffer, and delivers the rest when it returns', async () => {
    const port = await freePort();
    const shipper = new LokiShipper(`http://127.0.0.1:${port}`, {}, { capacity: 10, ...fast });
    const pushes: LokiPush[] = [];
    let server: HttpServer | undefined;
    try {
      for (let i = 0; i < 25; i++) shipper.write(line(i));
      await eventually(() => shipper.stats().failures >= 2);
      expect(shipper.stats()).toMatchObject({ sent: 0, dropped: 15, buffered: 10 });
      server = await startLoki(port, pushes);
      await eventually(() => shipper.stats().sent === 10);
      const delivered = pushes.flatMap((p) => p.body.streams.flatMap((s) => s.values.map((v) => JSON.parse(v[1]).message as string)));
      expect(delivered).toEqual(Array.from({ length: 10 }, (_, k) => `line ${k + 15}`));
      expect(shipper.stats()).toMatchObject({ sent: 10, dropped: 15, buffered: 0 });
      expect(shipper.stats().lastError).toBeDefined();
    } finally {
      await shipper.close();
      server?.close();
    }
  });

  it('never blocks the writer while the sink hangs', async () => {
    const port = await freePort();
    const server = await startLoki(port, [], false);
    const shipper = new LokiShipper(`http://127.0.0.1:${port}`, {}, { capacity: 100, ...fast, batchSize: 50 });
    try {
      for (let i = 0; i < 1000; i++) shipper.write(line(i));
      // All 1000 writes returned synchronously while the first delivery hangs.
      const stats = shipper.stats();
      expect(stats.sent).toBe(0);
      expect(stats.buffered).toBe(100);
      expect(stats.dropped).toBe(900);
    } finally {
      server.closeAllConnections();
      server.close();
      await shipper.close(200);
    }
  });
});

describe('LogstashTcpShipper', () => {
  it('sends JSON lines, and reconnects after the server drops the connection', async () => {
    const received: string[] = [];
    let pending = '';
    const sockets = new Set<Socket>();
    const server = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on('data', (d: Buffer) => {
        pending += d.toString();
        const parts = pending.split('\n');
        pending = parts.pop()!;
        received.push(...parts);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as AddressInfo;
    const shipper = new LogstashTcpShipper('127.0.0.1', port, { capacity: 100, ...fast });
    try {
      shipper.write(line(1));
      shipper.write(line(2));
      await eventually(() => received.length === 2);
      expect(received.map((l) => JSON.parse(l).message)).toEqual(['line 1', 'line 2']);
      for (const s of sockets) s.destroy();
      await new Promise((r) => setTimeout(r, 50));
      shipper.write(line(3));
      await eventually(() => received.length === 3, 10_000);
      expect(JSON.parse(received[2]!).message).toBe('line 3');
    } finally {
      await shipper.close();
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  it('keeps lines while Logstash is down', async () => {
    const shipper = new LogstashTcpShipper('127.0.0.1', await freePort(), { capacity: 5, ...fast });
    for (let i = 0; i < 8; i++) shipper.write(line(i));
    await eventually(() => shipper.stats().failures >= 1);
    expect(shipper.stats()).toMatchObject({ sent: 0, buffered: 5, dropped: 3 });
    await shipper.close(100);
    expect(shipper.stats()).toMatchObject({ buffered: 0, dropped: 8 });
  });
});

describe('LogstashUdpShipper', () => {
  it('sends one datagram per line and counts lines too large for UDP as dropped', async () => {
    const socket = createSocket('udp4');
    const received: string[] = [];
    socket.on('message', (m) => received.push(m.toString()));
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    const shipper = new LogstashUdpShipper('127.0.0.1', socket.address().port, { capacity: 100, ...fast });
    try {
      shipper.write(line(1));
      shipper.write(JSON.stringify({ message: 'x'.repeat(70_000) }));
      shipper.write(line(2));
      await eventually(() => received.length === 2);
      expect(received.map((l) => JSON.parse(l).message)).toEqual(['line 1', 'line 2']);
      await eventually(() => shipper.stats().buffered === 0);
      expect(shipper.stats()).toMatchObject({ sent: 2, dropped: 1 });
    } finally {
      await shipper.close();
      socket.close();
    }
  });
});

describe('log shipping metrics', () => {
  it('exposes each shipper\'s counters by sink', async () => {
    const shipper = new LogstashTcpShipper('127.0.0.1', await freePort(), { capacity: 2, ...fast });
    for (let i = 0; i < 5; i++) shipper.write(line(i));
    const registry = new Registry();
    registerLogShipperMetrics(registry, [shipper]);
    const text = await registry.metrics();
    expect(text).toContain('siq_log_ship_dropped_total{sink="logstash-tcp"} 3');
    expect(text).toContain('siq_log_ship_buffered{sink="logstash-tcp"} 2');
    expect(text).toContain('siq_log_ship_sent_total{sink="logstash-tcp"} 0');
    await shipper.close(50);
  });
});
