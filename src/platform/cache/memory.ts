import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Cache, Lock } from './types.js';

interface Entry {
  value: string;
  expiresAt: number | null;
}

const SWEEP_INTERVAL_MS = 30_000;

/**
 * The cache for one process: a Map with expiry, an in-process emitter for pub/sub, and locks
 * with owner tokens. Expired keys are dropped when read and by a periodic sweep, so memory does
 * not grow with keys nobody reads again.
 */
export class MemoryCache implements Cache {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, Entry>();
  private readonly bus = new EventEmitter();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor() {
    this.bus.setMaxListeners(0);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
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
    const entry = this.live(key);
    const next = (entry ? Number(entry.value) || 0 : 0) + (options.by ?? 1);
    this.entries.set(key, { value: String(next), expiresAt: entry ? entry.expiresAt : options.ttlMs ? Date.now() + options.ttlMs : null });
    return next;
  }

  async ttl(key: string): Promise<number | null> {
    this.assertOpen();
    const entry = this.live(key);
    if (!entry || entry.expiresAt === null) return null;
    return Math.max(0, entry.expiresAt - Date.now());
  }

  async publish(channel: string, message: string): Promise<void> {
    this.assertOpen();
    // Delivered on a later tick, like Redis: a publisher never runs subscribers inline.
    setImmediate(() => this.bus.emit(channel, message));
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    this.assertOpen();
    this.bus.on(channel, handler);
    return async () => {
      this.bus.off(channel, handler);
    };
  }

  async acquireLock(name: string, ttlMs: number): Promise<Lock | null> {
    const key = `lock:${name}`;
    const token = randomUUID();
    if (!(await this.setIfAbsent(key, token, { ttlMs }))) return null;
    const owns = () => this.live(key)?.value === token;
    return {
      name,
      release: async () => {
        if (!owns()) return false;
        this.entries.delete(key);
        return true;
      },
      extend: async (ms: number) => {
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
