import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Framer, startListener, type Listener } from '../src/modules/ingest/sources/stream-listeners.js';
import { buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from './helpers/app.js';

const run = promisify(execFile);

describe('Framer', () => {
  it('splits newline and octet-counted frames, mixed, across chunk boundaries', () => {
    const f = new Framer(1000);
    expect(f.push(Buffer.from('<13>one\n<13>tw'))).toEqual([{ line: '<13>one' }]);
    expect(f.push(Buffer.from('o\r\n10 <13>three!10 <13>fo'))).toEqual([{ line: '<13>two' }, { line: '<13>three!' }]);
    expect(f.push(Buffer.from('ur!!\n'))).toEqual([{ line: '<13>four!!' }]);
  });

  it('reports and skips oversized messages, and survives binary garbage', () => {
    const f = new Framer(10);
    expect(f.push(Buffer.from('short\n'))).toEqual([{ line: 'short' }]);
    expect(f.push(Buffer.from('x'.repeat(25)))).toEqual([{ tooLong: true }]);
    expect(f.push(Buffer.from('yyy\nok\n'))).toEqual([{ line: 'ok' }]);
    expect(f.push(Buffer.from('99999 abc\n'))).toEqual([{ tooLong: true }]);
    const garbage = f.push(Buffer.from([0, 255, 254, 10, 7, 8, 10]));
    expect(garbage).toHaveLength(2);
  });
});

describe('network listeners', () => {
  let t: TestApp;
  let owner: TestUser;
  let ws: { id: string };
  const listeners: Listener[] = [];
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    t = await buildTestApp();
    owner = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner);
    for (const [name, protocol, transport] of [['syslogUdp', 'syslog', 'udp'], ['syslogTcp', 'syslog', 'tcp'], ['jsonlTcp', 'jsonl', 'tcp'], ['jsonlUdp', 'jsonl', 'udp']] as const) {
      const l = await startListener(t.app.ingest, t.app.platform.logger, { protocol, transport, host: '127.0.0.1', port: 0, workspaceId: ws.id, batchSize: 50 });
      listeners.push(l);
      ports[name] = l.port;
    }
  });
  afterAll(async () => {
    for (const l of listeners) await l.close();
    await t.close();
  });

  const find = async (query: string, expected: number) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const res = await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/search`, headers: owner.headers, payload: { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', query, sort: 'asc' } });
      const events = res.json().events as Array<Record<string, unknown>>;
      if (events.length >= expected || Date.now() > deadline) return events;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it('receives the system logger over UDP and TCP (RFC 5424, octet counting too)', async () => {
    await run('logger', ['--server', '127.0.0.1', '--port', String(ports.syslogUdp), '--udp', '--rfc5424', '--tag', 'sshd', 'Failed password for root from 198.51.100.23 port 4242 ssh2']);
    await run('logger', ['--server', '127.0.0.1', '--port', String(ports.syslogTcp), '--tcp', '--rfc5424', '--tag', 'siqtest', '--sd-id', 'meta@1', '--sd-param', 'case="42"', 'tcp newline framed']);
    await run('logger', ['--server', '127.0.0.1', '--port', String(ports.syslogTcp), '--tcp', '--octet-count', '--rfc3164', '--tag', 'siqtest', 'tcp octet counted']);
    const [ssh] = await find('event.action:ssh_login', 1);
    expect(ssh).toMatchObject({ 'event.outcome': 'failure', 'user.name': 'root', 'source.ip': '198.51.100.23', 'process.name': 'sshd', 'event.source': 'syslog', 'log.syslog.format': 'rfc5424' });
    expect(String(ssh!['log.source.address'])).toMatch(/^127\.0\.0\.1:\d+$/);
    const tcp = await find('process.name:siqtest', 2);
    expect(tcp.map((e) => e.message).sort()).toEqual(['tcp newline framed', 'tcp octet counted']);
    expect(tcp.find((e) => e.message === 'tcp newline framed')!['syslog.sd.meta@1.case']).toBe('42');
  });

  it('stores every line of a sender that writes many batches and closes at once', async () => {
    // 7 batches of 50 in one write, then the connection ends: more than the batches a connection
    // may have in flight, so some are still waiting when the socket is gone.
    const sock = connect(ports.jsonlTcp!, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.end(Array.from({ length: 350 }, (_, i) => `${JSON.stringify({ tag: 'burst-then-close', n: i })}\n`).join(''));
    const deadline = Date.now() + 15_000;
    let count = 0;
    while (Date.now() < deadline) {
      const res = await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/count`, headers: owner.headers, payload: { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', query: 'tag:burst-then-close' } });
      count = res.json().count as number;
      if (count >= 350) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(count).toBe(350);
  });

  it('keeps listening after garbage bytes, and rejects what cannot be parsed alone', async () => {
    const sock = connect(ports.jsonlTcp!, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(Buffer.from([0xff, 0xfe, 0x00, 0x0a]));
    sock.write('{"tag":"jsonl","n":1}\n{not json}\n');
    sock.write(`${JSON.stringify({ tag: 'jsonl', n: 2 })}\n`);
    sock.end();
    const events = await find('tag:jsonl', 2);
    expect(events.map((e) => e.n).sort()).toEqual([1, 2]);
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.send(Buffer.from('\u0000garbage\n{"tag":"jsonl-udp"}\n'), ports.jsonlUdp!, '127.0.0.1', () => resolve()));
    udp.close();
    expect(await find('tag:jsonl-udp', 1)).toHaveLength(1);
    const stats = (await t.app.ingest.stats(ws.id)).jsonl!;
    expect(stats.rejectedByReason.invalid_json).toBeGreaterThanOrEqual(3);
    expect(stats.received).toBe(stats.stored + stats.rejected + stats.dropped);
    // Still listening.
    await run('logger', ['--server', '127.0.0.1', '--port', String(ports.syslogTcp), '--tcp', '--tag', 'after', 'still alive']);
    expect(await find('process.name:after', 1)).toHaveLength(1);
  });
});
