import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Cache, Lock, WindowState } from './types.js';

interface Entry {
  value: string;
  expiresAt: number | null;
  /** Sliding windows keep their members here (member → time); `value` is unused. */
  window?: Map<string, number>;
}

export interface MemoryCacheOptions {
  /** How often expired keys nobody reads again are dropped. */
  sweepIntervalMs?: number;
  /** Receives exceptions thrown by subscribers, which must not reach the publisher or the process. */
  onError?: (err: Error) => void;
}

const INTEGER = /^-?\d+$/;

/**
 * The cache for one process: a Map with expiry, an in-process emitter for pub/sub, and locks
 * with owner tokens. Expired keys are dropped when read and by a periodic sweep, so memory does
 * not grow with keys nobody reads again. It mirrors Redis where callers could tell the
 * difference (asynchronous delivery, integer-only counters), so code tested on it behaves the
 * same in production.
 */
export class MemoryCache implements Cache {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, Entry>();
  private readonly bus = new EventEmitter();
  private readonly sweeper: NodeJS.Timeout;
  private readonly onError: (err: Error) => void;
  private closed = false;

  constructor(options: MemoryCacheOptions = {}) {
    this.bus.setMaxListeners(0);
    this.onError = options.onError ?? ((err) => console.error('cache subscriber failed:', err));
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 30_000);
    // The sweep is housekeeping: it must not keep a finished process alive.
    this.sweeper.unref();
  }

  /** Entries held right now, expired or not; lets tests see that the sweep frees memory. */
  get size(): number {
    return this.entries.size;
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt !== null && entry.expiresAt <= now) this.entries.delete(key);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('cache is closed');
  }

  async get(key: string): Promise<string | null> {
    this.assertOpen();
    return this.live(key)?.value ?? null;
  }

  async set(key: string, value: string, options: { ttlMs?: number } = {}): Promise<void> {
    this.assertOpen();
    this.entries.set(key, { value, expiresAt: options.ttlMs ? Date.now() + options.ttlMs : null });
  }

  async setIfAbsent(key: string, value: string, options: { ttlMs?: number } = {}): Promise<boolean> {
    this.assertOpen();
    if (this.live(key)) return false;
    this.entries.set(key, { value, expiresAt: options.ttlMs ? Date.now() + options.ttlMs : null });
    return true;
  }

  async delete(key: string): Promise<boolean> {
    this.assertOpen();
    const existed = this.live(key) !== undefined;
    this.entries.delete(key);
    return existed;
  }

  async incr(key: string, options: { by?: number; ttlMs?: number } = {}): Promise<number> {
    this.assertOpen();
    const by = options.by ?? 1;
    const entry = this.live(key);
    // Redis refuses INCRBY on text or with a fraction; refusing here too keeps bugs visible in dev.
    if (!Number.isSafeInteger(by) || (entry && !INTEGER.test(entry.value))) throw new Error('value is not an integer or out of range');
    const next = (entry ? Number(entry.value) : 0) + by;
    // A fixed window: the expiry belongs to the counter's creation, later increments keep it.
    this.entries.set(key, { value: String(next), expiresAt: entry ? entry.expiresAt : options.ttlMs ? Date.now() + options.ttlMs : null });
    return next;
  }

  async windowAdd(key: string, member: string, atMs: number, windowMs: number, options: { withMembers?: boolean } = {}): Promise<WindowState> {
    this.assertOpen();
    let entry = this.live(key);
    if (!entry?.window) this.entries.set(key, (entry = { value: '', expiresAt: null, window: new Map() }));
    const window = entry.window!;
    const previous = window.get(member);
    if (previous === undefined || previous < atMs) window.set(member, atMs);
    const cutoff = atMs - windowMs;
    for (const [m, at] of window) if (at < cutoff) window.delete(m);
    entry.expiresAt = Date.now() + windowMs;
    if (!options.withMembers) return { count: window.size };
    const members = [...window].map(([m, at]) => ({ member: m, at })).sort((a, b) => a.at - b.at || (a.member < b.member ? -1 : 1));
    return { count: window.size, members };
  }

  async ttl(key: string): Promise<number | null> {
    this.assertOpen();
    const entry = this.live(key);
    if (!entry || entry.expiresAt === null) return null;
    return Math.max(0, entry.expiresAt - Date.now());
  }

  async publish(channel: string, message: string): Promise<void> {
    this.assertOpen();
    // Delivered on a later tick, like Redis: a publisher never runs subscribers inline. Event
    // names carry a prefix because EventEmitter treats a bare 'error' event as a crash.
    setImmediate(() => this.bus.emit(`message:${channel}`, message));
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    this.assertOpen();
    // One listener per call, so the same handler subscribed twice is two subscriptions and each
    // unsubscribe removes only its own.
    const listener = (message: string) => {
      try {
        handler(message);
      } catch (err) {
        this.onError(err instanceof Error ? err : new Error(String(err)));
      }
    };
    this.bus.on(`message:${channel}`, listener);
    return async () => {
      this.bus.off(`message:${channel}`, listener);
    };
  }

  async acquireLock(name: string, ttlMs: number): Promise<Lock | null> {
    assertLockTtl(ttlMs);
    const key = `lock:${name}`;
    const token = randomUUID();
    if (!(await this.setIfAbsent(key, token, { ttlMs }))) return null;
    // The token tells this holder from whoever took the lock after it expired.
    const owns = () => this.live(key)?.value === token;
    return {
      name,
      release: async () => {
        if (!owns()) return false;
        this.entries.delete(key);
        return true;
      },
      extend: async (ms: number) => {
        assertLockTtl(ms);
        if (!owns()) return false;
        this.entries.set(key, { value: token, expiresAt: Date.now() + ms });
        return true;
      },
    };
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.bus.removeAllListeners();
    this.entries.clear();
  }
}

/** A lock without expiry would outlive a crashed holder forever, so a positive ttl is required. */
function assertLockTtl(ttlMs: number): void {
  if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new RangeError(`lock ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
}
