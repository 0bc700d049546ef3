import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from '../../../platform/log/logger.js';
import { parseSyslog } from '../parsers/syslog.js';
import type { IngestPipeline, RawItem } from '../pipeline.js';

export type Protocol = 'syslog' | 'jsonl';

export interface ListenerOptions {
  protocol: Protocol;
  transport: 'tcp' | 'udp' | 'tls';
  host: string;
  port: number;
  workspaceId: string;
  tls?: { certFile: string; keyFile: string };
  /** Lines longer than this are rejected (and the rest of them skipped). */
  maxLineBytes?: number;
  /** Items handed to the pipeline at once. */
  batchSize?: number;
}

export interface Listener {
  readonly port: number;
  close(): Promise<void>;
}

const SOURCE: Record<Protocol, string> = { syslog: 'syslog', jsonl: 'jsonl' };

/** One line (or datagram) of a protocol → an item; a bad line becomes a rejected item, never an exception. */
export function toItem(protocol: Protocol, line: string, sender: string): RawItem {
  const extra = { 'log.source.address': sender };
  if (protocol === 'syslog') return { value: parseSyslog(line), extra };
  try {
    const value = JSON.parse(line) as unknown;
    return { value, extra };
  } catch (err) {
    return { error: 'invalid_json', message: `not valid JSON: ${(err as Error).message}` };
  }
}

/**
 * Splits a TCP byte stream into messages: RFC 6587 octet counting (`<length> <message>`) when a
 * frame starts with digits and a space, newline framing otherwise; both may mix on one
 * connection. Oversized messages are reported and skipped, so garbage never wedges the parser.
 */
export class Framer {
  private buffer: Buffer = Buffer.alloc(0);
  private skipping = false;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): Array<{ line: string } | { tooLong: true }> {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const out: Array<{ line: string } | { tooLong: true }> = [];
    for (;;) {
      if (this.buffer.length === 0) break;
      if (this.skipping) {
        const nl = this.buffer.indexOf(10);
        if (nl < 0) {
          this.buffer = Buffer.alloc(0);
          break;
        }
        this.buffer = this.buffer.subarray(nl + 1);
        this.skipping = false;
        continue;
      }
      const octet = /^(\d{1,7}) /.exec(this.buffer.subarray(0, 9).toString('latin1'));
      if (octet && this.buffer[0] !== 0x30) {
        const length = Number(octet[1]);
        const start = octet[0].length;
        if (length > this.maxBytes) {
          out.push({ tooLong: true });
          this.buffer = this.buffer.subarray(Math.min(this.buffer.length, start + length));
          continue;
        }
        if (this.buffer.length < start + length) break;
        out.push({ line: this.buffer.subarray(start, start + length).toString('utf8') });
        this.buffer = this.buffer.subarray(start + length);
        continue;
      }
      const nl = this.buffer.indexOf(10);
      if (nl < 0) {
        if (this.buffer.length > this.maxBytes) {
          out.push({ tooLong: true });
          this.buffer = Buffer.alloc(0);
          this.skipping = true;
        }
        break;
      }
      const line = this.buffer.subarray(0, nl).toString('utf8').replace(/\r$/, '');
      this.buffer = this.buffer.subarray(nl + 1);
      if (nl > this.maxBytes) out.push({ tooLong: true });
      else if (line.trim()) out.push({ line });
    }
    return out;
  }
}

/**
 * Starts one network listener. TCP and TLS: each connection is read in batches; while a batch is
 * being committed the socket is paused, so a fast sender is slowed by TCP itself and nothing
 * is acknowledged (read) beyond what the store took. UDP has no pushback: datagrams that arrive
 * while the queue is full are counted as dropped.
 */
export async function startListener(pipeline: IngestPipeline, logger: Logger, options: ListenerOptions): Promise<Listener> {
  const maxBytes = options.maxLineBytes ?? (options.protocol === 'syslog' ? 64 * 1024 : 1024 * 1024);
  const batchSize = options.batchSize ?? 1000;
  const source = SOURCE[options.protocol];
  const log = logger.child({ component: 'ingest', listener: `${options.protocol}/${options.transport}:${options.port}` });

  if (options.transport === 'udp') {
    const socket: UdpSocket = createSocket(options.host.includes(':') ? 'udp6' : 'udp4');
    let pending: RawItem[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      const items = pending;
      pending = [];
      if (items.length === 0) return;
      if (pipeline.isFull(items.length)) {
        pipeline.countDropped(options.workspaceId, source, items.length);
        return;
      }
      pipeline.ingest(options.workspaceId, source, items).catch((err: unknown) => {
        // Refused before counting (queue full): these datagrams are dropped. Later failures
        // were counted by the pipeline itself.
        if ((err as { code?: string }).code === 'SIQ_INGEST_BUSY') pipeline.countDropped(options.workspaceId, source, items.length);
        log.warn({ err: (err as Error).message }, 'a UDP batch could not be stored');
      });
    };
    socket.on('message', (msg, rinfo) => {
      const sender = `${rinfo.address}:${rinfo.port}`;
      const text = msg.toString('utf8');
      const lines = options.protocol === 'jsonl' ? text.split('\n').filter((l) => l.trim()) : [text];
      for (const line of lines) pending.push(Buffer.byteLength(line) > maxBytes ? { error: 'too_long', message: `a message longer than ${maxBytes} bytes` } : toItem(options.protocol, line, sender));
      if (pending.length >= batchSize) flush();
      else timer ??= setTimeout(flush, 100);
    });
    socket.on('error', (err) => log.warn({ err: err.message }, 'UDP listener error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(options.port, options.host, () => resolve());
    });
    log.info('listening');
    return {
      port: socket.address().port,
      close: async () => {
        clearTimeout(timer);
        flush();
        await new Promise<void>((resolve) => socket.close(() => resolve()));
      },
    };
  }

  const sockets = new Set<Socket>();
  const onConnection = (socket: Socket) => {
    sockets.add(socket);
    const sender = `${socket.remoteAddress}:${socket.remotePort}`;
    const framer = new Framer(maxBytes);
    let pending: RawItem[] = [];
    let busy = false;
    let timer: NodeJS.Timeout | undefined;
    const submit = async () => {
      clearTimeout(timer);
      timer = undefined;
      if (busy || pending.length === 0) return;
      busy = true;
      socket.pause();
      const items = pending;
      pending = [];
      try {
        while (pipeline.isFull(items.length)) await new Promise((r) => setTimeout(r, 50));
        await pipeline.ingest(options.workspaceId, source, items);
      } catch (err) {
        log.warn({ err: (err as Error).message, sender }, 'a batch from this connection could not be stored; closing it so the sender resends');
        socket.destroy();
      } finally {
        busy = false;
        if (!socket.destroyed) socket.resume();
        if (pending.length > 0) void submit();
      }
    };
    socket.on('data', (chunk: Buffer) => {
      for (const frame of framer.push(chunk)) {
        pending.push('tooLong' in frame ? { error: 'too_long', message: `a message longer than ${maxBytes} bytes` } : toItem(options.protocol, frame.line, sender));
      }
      if (pending.length >= batchSize) void submit();
      else if (pending.length > 0) timer ??= setTimeout(() => void submit(), 100);
    });
    socket.on('end', () => void submit());
    socket.on('error', () => undefined);
    socket.on('close', () => {
      sockets.delete(socket);
      clearTimeout(timer);
    });
  };

  const server: Server = options.transport === 'tls'
    ? createTlsServer({ cert: readFileSync(options.tls!.certFile), key: readFileSync(options.tls!.keyFile) }, onConnection)
    : createServer(onConnection);
  server.on('error', (err) => log.warn({ err: err.message }, 'listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  log.info('listening');
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.end();
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 2000).unref();
      });
    },
  };
}
