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

/** Batches of one TCP connection being stored at once. */
const MAX_IN_FLIGHT = 2;

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
  private buffer: Buffer = EMPTY;
  private skipping = false;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): Array<{ line: string } | { tooLong: true }> {
    // One offset walks the buffer: no Buffer view, regex or copy per line.
    const buf = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const out: Array<{ line: string } | { tooLong: true }> = [];
    let pos = 0;
    while (pos < buf.length) {
      if (this.skipping) {
        const nl = buf.indexOf(10, pos);
        if (nl < 0) {
          pos = buf.length;
          break;
        }
        pos = nl + 1;
        this.skipping = false;
        continue;
      }
      const octet = octetHeader(buf, pos);
      if (octet) {
        const start = pos + octet.headerBytes;
        if (octet.length > this.maxBytes) {
          out.push({ tooLong: true });
          pos = Math.min(buf.length, start + octet.length);
          continue;
        }
        if (buf.length < start + octet.length) break;
        out.push({ line: buf.toString('utf8', start, start + octet.length) });
        pos = start + octet.length;
        continue;
      }
      const nl = buf.indexOf(10, pos);
      if (nl < 0) {
        if (buf.length - pos > this.maxBytes) {
          out.push({ tooLong: true });
          pos = buf.length;
          this.skipping = true;
        }
        break;
      }
      if (nl - pos > this.maxBytes) out.push({ tooLong: true });
      else {
        const line = buf.toString('utf8', pos, nl > pos && buf[nl - 1] === 13 ? nl - 1 : nl);
        if (line.trim()) out.push({ line });
      }
      pos = nl + 1;
    }
    this.buffer = pos >= buf.length ? EMPTY : buf.subarray(pos);
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

/** RFC 6587 octet counting: 1–7 digits (not starting with 0) and a space at `pos`. */
function octetHeader(buf: Buffer, pos: number): { length: number; headerBytes: number } | null {
  const first = buf[pos]!;
  if (first < 0x31 || first > 0x39) return null;
  let length = 0;
  let i = pos;
  while (i < buf.length && i - pos < 8 && buf[i]! >= 0x30 && buf[i]! <= 0x39) length = length * 10 + (buf[i++]! - 0x30);
  const digits = i - pos;
  if (digits > 7 || i >= buf.length || buf[i] !== 0x20) return null;
  return { length, headerBytes: digits + 1 };
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
    // Batches of this connection being stored. While one commits the next is read and parsed,
    // so reading, parsing and writing overlap; with MAX_IN_FLIGHT out, reading pauses (TCP
    // itself then slows the sender), as it does while the pipeline's queue is full.
    let inFlight = 0;
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const submit = async () => {
      clearTimeout(timer);
      timer = undefined;
      // Lines already read are stored (and counted) even when the sender has gone meanwhile.
      if (pending.length === 0) return;
      if (inFlight >= MAX_IN_FLIGHT) {
        socket.pause();
        return;
      }
      inFlight++;
      if (inFlight >= MAX_IN_FLIGHT) socket.pause();
      const items = pending;
      pending = [];
      try {
        while (pipeline.isFull(items.length)) {
          socket.pause();
          await new Promise((r) => setTimeout(r, 50));
        }
        await pipeline.ingest(options.workspaceId, source, items);
      } catch (err) {
        log.warn({ err: (err as Error).message, sender }, 'a batch from this connection could not be stored; closing it so the sender resends');
        socket.destroy();
      } finally {
        inFlight--;
        if (!socket.destroyed && !ended && inFlight < MAX_IN_FLIGHT) socket.resume();
        if (pending.length >= batchSize || (ended && pending.length > 0)) void submit();
        else if (pending.length > 0) timer ??= setTimeout(() => void submit(), 100);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      for (const frame of framer.push(chunk)) {
        pending.push('tooLong' in frame ? { error: 'too_long', message: `a message longer than ${maxBytes} bytes` } : toItem(options.protocol, frame.line, sender));
      }
      if (pending.length >= batchSize) void submit();
      else if (pending.length > 0) timer ??= setTimeout(() => void submit(), 100);
    });
    socket.on('end', () => {
      ended = true;
      void submit();
    });
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
