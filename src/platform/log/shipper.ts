import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';

export interface ShipperStats {
  sink: string;
  /** Lines the sink accepted (HTTP 2xx, or written to the socket). */
  sent: number;
  /** Lines thrown away because the buffer was full (oldest first) or a line could not be sent at all. */
  dropped: number;
  /** Lines waiting in the buffer. */
  buffered: number;
  /** Failed delivery attempts. */
  failures: number;
  lastError?: string;
}

export interface ShipperOptions {
  /** Lines kept while the sink is unreachable (LOG_SHIP_BUFFER). */
  capacity: number;
  /** Most lines per delivery. */
  batchSize?: number;
  /** How often buffered lines are sent when the batch is not full. */
  flushIntervalMs?: number;
  /** Retry backoff bounds while the sink is down. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Ships the platform's own log lines to a sink without ever blocking the code that logs:
 * `write` only appends to a bounded buffer (dropping the oldest line when full, and counting
 * it); a timer delivers batches and, while the sink is down, retries with capped exponential
 * backoff. Subclasses implement `deliver` for one batch.
 */
export abstract class LogShipper {
  abstract readonly sink: string;
  private buffer: string[] = [];
  private head = 0;
  private sent = 0;
  private dropped = 0;
  private failures = 0;
  private lastError?: string;
  private timer?: NodeJS.Timeout;
  private inFlight?: Promise<void>;
  private backoffMs = 0;
  private closed = false;
  protected readonly capacity: number;
  protected readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(options: ShipperOptions) {
    this.capacity = Math.max(1, options.capacity);
    this.batchSize = options.batchSize ?? 500;
    this.flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.minBackoffMs = options.minBackoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
  }

  /** Delivers one batch; throws when the sink did not take it. */
  protected abstract deliver(lines: string[]): Promise<void>;

  /** Appends a line; never blocks and never throws. */
  write(line: string): void {
    if (this.closed) return;
    this.buffer.push(line.endsWith('\n') ? line.slice(0, -1) : line);
    const over = this.size() - this.capacity;
    if (over > 0) {
      this.head += over;
      this.dropped += over;
    }
    // Compact now and then so the array does not keep dropped lines alive.
    if (this.head > 1024 && this.head * 2 > this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
    this.schedule(this.size() >= this.batchSize && this.backoffMs === 0 ? 0 : this.backoffMs || this.flushIntervalMs);
  }

  private size(): number {
    return this.buffer.length - this.head;
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.inFlight || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flushOnce();
    }, delayMs);
    this.timer.unref();
  }

  private flushOnce(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    if (this.size() === 0) return Promise.resolve();
    const count = Math.min(this.batchSize, this.size());
    const batch = this.buffer.slice(this.head, this.head + count);
    const startHead = this.head;
    this.inFlight = this.deliver(batch)
      .then(() => {
        // Lines dropped from the front while this batch was in flight were part of it: only
        // the part of the batch still in the buffer is removed and counted as sent.
        // Those lines were delivered after all, so they move from "dropped" to "sent".
        const stillBuffered = Math.max(0, startHead + count - this.head);
        this.head += stillBuffered;
        this.dropped -= count - stillBuffered;
        this.sent += count;
        this.backoffMs = 0;
      })
      .catch((err: unknown) => {
        this.failures++;
        this.lastError = (err as Error).message || String(err);
        this.backoffMs = Math.min(this.maxBackoffMs, this.backoffMs ? this.backoffMs * 2 : this.minBackoffMs);
      })
      .finally(() => {
        this.inFlight = undefined;
        if (this.size() > 0) this.schedule(this.backoffMs || (this.size() >= this.batchSize ? 0 : this.flushIntervalMs));
      });
    return this.inFlight;
  }

  /** Sends what is buffered, waiting at most `timeoutMs`; returns true when the buffer emptied. */
  async flush(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.size() > 0 && Date.now() < deadline) {
      const before = this.failures;
      await Promise.race([this.flushOnce(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
      if (this.failures > before) await new Promise((r) => setTimeout(r, Math.min(this.backoffMs, Math.max(0, deadline - Date.now()))).unref());
    }
    return this.size() === 0;
  }

  stats(): ShipperStats {
    return { sink: this.sink, sent: this.sent, dropped: this.dropped, buffered: this.size(), failures: this.failures, lastError: this.lastError };
  }

  /** Flushes (bounded) and stops; lines still buffered after the wait are counted as dropped. */
  async close(timeoutMs = 2000): Promise<void> {
    await this.flush(timeoutMs);
    this.closed = true;
    clearTimeout(this.timer);
    this.dropped += this.size();
    this.buffer = [];
    this.head = 0;
    await this.release();
  }

  protected async release(): Promise<void> {}
}

/** Grafana Loki's push API (JSON), one stream per level. Credentials in the URL become Basic auth. */
export class LokiShipper extends LogShipper {
  readonly sink = 'loki';
  private readonly endpoint: string;
  private readonly authorization?: string;

  constructor(url: string, private readonly labels: Record<string, string>, options: ShipperOptions & { timeoutMs?: number }) {
    super(options);
    const parsed = new URL(url);
    if (parsed.username || parsed.password) {
      this.authorization = `Basic ${Buffer.from(`${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`).toString('base64')}`;
      parsed.username = '';
      parsed.password = '';
    }
    this.endpoint = `${parsed.toString().replace(/\/+$/, '')}/loki/api/v1/push`;
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  private readonly timeoutMs: number;

  protected async deliver(lines: string[]): Promise<void> {
    const streams = new Map<string, Array<[string, string]>>();
    for (const line of lines) {
      let level = 'info';
      let ns = `${Date.now()}000000`;
      try {
        const record = JSON.parse(line) as { level?: string; timestamp?: string };
        if (typeof record.level === 'string') level = record.level;
        const ms = record.timestamp ? Date.parse(record.timestamp) : NaN;
        if (!Number.isNaN(ms)) ns = `${ms}000000`;
      } catch {
        // not JSON: ship as is under "info"
      }
      let values = streams.get(level);
      if (!values) streams.set(level, (values = []));
      values.push([ns, line]);
    }
    const body = { streams: [...streams].map(([level, values]) => ({ stream: { ...this.labels, level }, values })) };
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(this.authorization ? { authorization: this.authorization } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok) throw new Error(`Loki answered ${res.status}`);
    await res.arrayBuffer();
  }
}

/**
 * Logstash over TCP, newline-delimited JSON, on one persistent connection that is reopened on
 * the next delivery after it breaks. A batch counts as sent once the socket accepted it; lines
 * in flight when a connection dies can be lost, as with any plain TCP shipper.
 */
export class LogstashTcpShipper extends LogShipper {
  readonly sink = 'logstash-tcp';
  private socket?: Socket;

  constructor(private readonly host: string, private readonly port: number, options: ShipperOptions) {
    super(options);
  }

  private connection(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed && this.socket.writable) return Promise.resolve(this.socket);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: this.host, port: this.port });
      socket.setKeepAlive(true);
      socket.setTimeout(5000, () => socket.destroy(new Error('Logstash connection timed out')));
      socket.once('connect', () => {
        socket.setTimeout(0);
        this.socket = socket;
        resolve(socket);
      });
      socket.once('error', reject);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (this.socket === socket) this.socket = undefined;
      });
      socket.unref();
    });
  }

  protected async deliver(lines: string[]): Promise<void> {
    const socket = await this.connection();
    await new Promise<void>((resolve, reject) => {
      socket.write(`${lines.join('\n')}\n`, (err) => (err ? reject(err) : resolve()));
    });
  }

  protected override async release(): Promise<void> {
    this.socket?.end();
    this.socket?.destroy();
  }
}

/** Logstash over UDP: one datagram per line. Lines over 60 KB cannot be sent and are counted as dropped. */
export class LogstashUdpShipper extends LogShipper {
  readonly sink = 'logstash-udp';
  private readonly socket: UdpSocket;
  private oversized = 0;

  constructor(private readonly host: string, private readonly port: number, options: ShipperOptions) {
    super(options);
    this.socket = createSocket('udp4');
    this.socket.on('error', () => undefined);
    this.socket.unref();
  }

  protected async deliver(lines: string[]): Promise<void> {
    for (const line of lines) {
      const datagram = Buffer.from(line);
      if (datagram.length > 60_000) {
        this.oversized++;
        continue;
      }
      await new Promise<void>((resolve, reject) => this.socket.send(datagram, this.port, this.host, (err) => (err ? reject(err) : resolve())));
    }
  }

  override stats(): ShipperStats {
    const stats = super.stats();
    return { ...stats, sent: stats.sent - this.oversized, dropped: stats.dropped + this.oversized };
  }

  protected override async release(): Promise<void> {
    this.socket.close();
  }
}
