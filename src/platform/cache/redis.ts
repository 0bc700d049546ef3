import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { Cache, Lock } from './types.js';

export interface RedisCacheOptions {
  url: string;
  password?: string;
  tls?: boolean;
  tlsCaFile?: string;
  keyPrefix: string;
  /** How long `ping` waits before it reports Redis down (health checks must answer promptly). */
  pingTimeoutMs?: number;
  onError?: (err: Error) => void;
}

// Sets the expiry only when the counter has none yet, i.e. when this increment created it: a
// fixed window that later increments do not push forward.
const INCR_WITH_TTL = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v`;

// Only the holder of the token may release or extend: a holder whose lock expired and was taken
// by someone else must not free the new owner's lock.
const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
const EXTEND_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/**
 * The cache on Redis 7, shared by every process. Reconnects by itself with capped backoff;
 * commands give up after two retries instead of queueing without bound while Redis is down.
 * Pub/sub uses a second connection (a subscribed Redis connection can do nothing else).
 */
export class RedisCache implements Cache {
  readonly kind = 'redis' as const;
  private readonly client: Redis;
  private subscriber?: Redis;
  private readonly handlers = new Map<string, Set<(message: string) => void>>();
  private readonly prefix: string;
  private readonly pingTimeoutMs: number;

  constructor(private readonly options: RedisCacheOptions) {
    this.prefix = options.keyPrefix;
    this.pingTimeoutMs = options.pingTimeoutMs ?? 1000;
    this.client = new Redis(options.url, this.connectionOptions());
    this.client.on('error', (err: Error) => options.onError?.(err));
  }

  private connectionOptions(): RedisOptions {
    const useTls = this.options.tls || this.options.url.startsWith('rediss:');
    return {
      password: this.options.password,
      tls: useTls ? { ca: this.options.tlsCaFile ? readFileSync(this.options.tlsCaFile) : undefined } : undefined,
      maxRetriesPerRequest: 2,
      connectTimeout: 5000,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
      lazyConnect: false,
    };
  }

  private key(key: string): string {
    return this.prefix + key;
  }

  async get(key: string): Promise<string | null> {
    return this.client.get(this.key(key));
  }

  async set(key: string, value: string, options: { ttlMs?: number } = {}): Promise<void> {
    if (options.ttlMs) await this.client.set(this.key(key), value, 'PX', options.ttlMs);
    else await this.client.set(this.key(key), value);
  }

  async setIfAbsent(key: string, value: string, options: { ttlMs?: number } = {}): Promise<boolean> {
    const result = options.ttlMs ? await this.client.set(this.key(key), value, 'PX', options.ttlMs, 'NX') : await this.client.set(this.key(key), value, 'NX');
    return result === 'OK';
  }

  async delete(key: string): Promise<boolean> {
    return (await this.client.del(this.key(key))) > 0;
  }

  async incr(key: string, options: { by?: number; ttlMs?: number } = {}): Promise<number> {
    const result = await this.client.eval(INCR_WITH_TTL, 1, this.key(key), options.by ?? 1, options.ttlMs ?? 0);
    return Number(result);
  }

  async ttl(key: string): Promise<number | null> {
    const ms = await this.client.pttl(this.key(key));
    return ms < 0 ? null : ms;
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.client.publish(this.key(channel), message);
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    const subscriber = this.subscriberConnection();
    const name = this.key(channel);
    let set = this.handlers.get(name);
    if (!set) {
      set = new Set();
      this.handlers.set(name, set);
      await subscriber.subscribe(name);
    }
    set.add(handler);
    return async () => {
      const current = this.handlers.get(name);
      if (!current?.delete(handler) || current.size > 0) return;
      this.handlers.delete(name);
      await subscriber.unsubscribe(name);
    };
  }

  private subscriberConnection(): Redis {
    if (!this.subscriber) {
      const subscriber = new Redis(this.options.url, this.connectionOptions());
      subscriber.on('error', (err: Error) => this.options.onError?.(err));
      subscriber.on('message', (channel: string, message: string) => {
        for (const handler of this.handlers.get(channel) ?? []) handler(message);
      });
      this.subscriber = subscriber;
    }
    return this.subscriber;
  }

  async acquireLock(name: string, ttlMs: number): Promise<Lock | null> {
    const key = this.key(`lock:${name}`);
    const token = randomUUID();
    const ok = await this.client.set(key, token, 'PX', ttlMs, 'NX');
    if (ok !== 'OK') return null;
    return {
      name,
      release: async () => Number(await this.client.eval(RELEASE_LOCK, 1, key, token)) === 1,
      extend: async (ms: number) => Number(await this.client.eval(EXTEND_LOCK, 1, key, token, ms)) === 1,
    };
  }

  async ping(): Promise<void> {
    // While disconnected ioredis would hold the command until it reconnects; a health check
    // needs the answer "down" now, so the ping races a timer.
    if (this.client.status !== 'ready') throw new Error(`Redis is not connected (${this.client.status})`);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.client.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.pingTimeoutMs} ms`)), this.pingTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.client, this.subscriber].filter((c): c is Redis => c !== undefined).map((c) => c.quit().catch(() => c.disconnect())));
  }
}
