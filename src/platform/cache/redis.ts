import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { Cache, Lock, WindowState } from './types.js';

export interface RedisCacheOptions {
  url: string;
  password?: string;
  tls?: boolean;
  tlsCaFile?: string;
  /** Put before every key and channel, so several deployments (or test runs) can share one server. */
  keyPrefix: string;
  /** How long `ping` waits before it reports Redis down (health checks must answer promptly). */
  pingTimeoutMs?: number;
  /** Receives connection errors (while ioredis reconnects by itself) and exceptions thrown by subscribers. */
  onError?: (err: Error) => void;
}

// Sets the expiry only when this increment created the counter: a fixed window that later
// increments do not push forward, and that a counter created without a ttl never gains.
const INCR_WITH_TTL = `
local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v`;

// ZADD GT keeps the later time of a member added twice; the window then drops what is too old.
const WINDOW_ADD = `
redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[5] == '1' then return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES') end
return redis.call('ZCARD', KEYS[1])`;

// Only the holder of the token may release or extend: a holder whose lock expired and was taken
// by someone else must not free or prolong the new owner's lock.
const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
const EXTEND_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/** Statuses in which ioredis knows the connection is gone and is only waiting to retry. */
const DOWN = new Set(['reconnecting', 'close', 'end']);

interface Channel {
  handlers: Set<(message: string) => void>;
  /** Settles when Redis confirmed SUBSCRIBE; every caller waits on it, not only the first. */
  ready: Promise<void>;
}

/**
 * The cache on Redis 7, shared by every process. Reconnects by itself with capped backoff;
 * commands give up after two reconnection attempts instead of queueing without bound while Redis
 * is down, and `ping` answers within `pingTimeoutMs` either way. Pub/sub uses a second, lazily
 * opened connection, because a subscribed Redis connection can do nothing else.
 */
export class RedisCache implements Cache {
  readonly kind = 'redis' as const;
  private readonly client: Redis;
  private subscriber?: Redis;
  private readonly channels = new Map<string, Channel>();
  private readonly prefix: string;
  private readonly pingTimeoutMs: number;
  private readonly onError: (err: Error) => void;
  private closed = false;

  constructor(private readonly options: RedisCacheOptions) {
    this.prefix = options.keyPrefix;
    this.pingTimeoutMs = options.pingTimeoutMs ?? 1000;
    this.onError = options.onError ?? (() => {});
    this.client = this.connect();
  }

  private connect(): Redis {
    const useTls = this.options.tls || this.options.url.startsWith('rediss:');
    const options: RedisOptions = {
      maxRetriesPerRequest: 2,
      connectTimeout: 5000,
      // Never give up (Redis coming back must heal the process), but never wait more than 2 s
      // between attempts either.
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    };
    if (this.options.password) options.password = this.options.password;
    if (useTls) options.tls = this.options.tlsCaFile ? { ca: readFileSync(this.options.tlsCaFile) } : {};
    const connection = new Redis(this.options.url, options);
    // Without a listener an 'error' event would throw and end the process on every lost connection.
    connection.on('error', (err: Error) => this.onError(err));
    return connection;
  }

  private get redis(): Redis {
    if (this.closed) throw new Error('cache is closed');
    return this.client;
  }

  private key(key: string): string {
    return this.prefix + key;
  }

  async get(key: string): Promise<string | null> {
    return this.redis.get(this.key(key));
  }

  async set(key: string, value: string, options: { ttlMs?: number } = {}): Promise<void> {
    if (options.ttlMs) await this.redis.set(this.key(key), value, 'PX', px(options.ttlMs));
    else await this.redis.set(this.key(key), value);
  }

  async setIfAbsent(key: string, value: string, options: { ttlMs?: number } = {}): Promise<boolean> {
    const result = options.ttlMs ? await this.redis.set(this.key(key), value, 'PX', px(options.ttlMs), 'NX') : await this.redis.set(this.key(key), value, 'NX');
    return result === 'OK';
  }

  async delete(key: string): Promise<boolean> {
    return (await this.redis.del(this.key(key))) > 0;
  }

  async incr(key: string, options: { by?: number; ttlMs?: number } = {}): Promise<number> {
    const result = await this.redis.eval(INCR_WITH_TTL, 1, this.key(key), options.by ?? 1, options.ttlMs ? px(options.ttlMs) : 0);
    return Number(result);
  }

  async windowAdd(key: string, member: string, atMs: number, windowMs: number, options: { withMembers?: boolean } = {}): Promise<WindowState> {
    const result = await this.redis.eval(WINDOW_ADD, 1, this.key(key), atMs, member, atMs - windowMs, px(windowMs), options.withMembers ? '1' : '0');
    if (!options.withMembers) return { count: Number(result) };
    const flat = result as string[];
    const members: Array<{ member: string; at: number }> = [];
    for (let i = 0; i < flat.length; i += 2) members.push({ member: flat[i]!, at: Number(flat[i + 1]) });
    return { count: members.length, members };
  }

  async ttl(key: string): Promise<number | null> {
    const ms = await this.redis.pttl(this.key(key));
    return ms < 0 ? null : ms;
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.redis.publish(this.key(channel), message);
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('cache is closed');
    const name = this.key(channel);
    let entry = this.channels.get(name);
    if (!entry) {
      const created: Channel = { handlers: new Set(), ready: this.subscriberConnection().subscribe(name).then(() => undefined) };
      // A failed SUBSCRIBE must not leave a channel that looks subscribed to the next caller.
      created.ready.catch(() => this.channels.get(name) === created && this.channels.delete(name));
      this.channels.set(name, created);
      entry = created;
    }
    // Registered before waiting, so an unsubscribe racing this call does not tear the channel
    // down underneath it; one wrapper per call, so each unsubscribe removes only its own.
    const registration = (message: string) => handler(message);
    entry.handlers.add(registration);
    try {
      await entry.ready;
    } catch (err) {
      entry.handlers.delete(registration);
      throw err;
    }
    const subscribed = entry;
    return async () => {
      if (!subscribed.handlers.delete(registration) || subscribed.handlers.size > 0) return;
      if (this.channels.get(name) !== subscribed) return;
      this.channels.delete(name);
      if (!this.closed) await this.subscriber?.unsubscribe(name);
    };
  }

  private subscriberConnection(): Redis {
    if (!this.subscriber) {
      const subscriber = this.connect();
      // ioredis subscribes again by itself after a reconnect (autoResubscribe).
      subscriber.on('message', (channel: string, message: string) => {
        for (const handler of [...(this.channels.get(channel)?.handlers ?? [])]) {
          // A throwing subscriber must neither starve the others nor break the connection's parser.
          try {
            handler(message);
          } catch (err) {
            this.onError(err instanceof Error ? err : new Error(String(err)));
          }
        }
      });
      this.subscriber = subscriber;
    }
    return this.subscriber;
  }

  async acquireLock(name: string, ttlMs: number): Promise<Lock | null> {
    assertLockTtl(ttlMs);
    const key = this.key(`lock:${name}`);
    // The token tells this holder from whoever takes the lock after it expired.
    const token = randomUUID();
    const ok = await this.redis.set(key, token, 'PX', px(ttlMs), 'NX');
    if (ok !== 'OK') return null;
    return {
      name,
      release: async () => Number(await this.redis.eval(RELEASE_LOCK, 1, key, token)) === 1,
      extend: async (ms: number) => {
        assertLockTtl(ms);
        return Number(await this.redis.eval(EXTEND_LOCK, 1, key, token, px(ms))) === 1;
      },
    };
  }

  /**
   * Health checks need "down" now, not when ioredis gives up: while the connection is known to be
   * lost this throws at once, and otherwise (first connect, or a server that accepts but does not
   * answer) the PING races a timer and the loss of the connection.
   */
  async ping(): Promise<void> {
    const client = this.redis;
    if (DOWN.has(client.status)) throw new Error(`Redis is not connected (${client.status})`);
    let timer: NodeJS.Timeout | undefined;
    let onClose: (() => void) | undefined;
    try {
      await Promise.race([
        client.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.pingTimeoutMs} ms`)), this.pingTimeoutMs);
          onClose = () => reject(new Error('Redis is not connected (connection lost)'));
          client.once('close', onClose);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (onClose) client.off('close', onClose);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    // QUIT lets replies in flight arrive; a connection that is not up has nothing to wait for,
    // and queueing QUIT on it would only wait for the next reconnect.
    const connections = [this.client, this.subscriber].filter((c): c is Redis => c !== undefined);
    await Promise.all(connections.map((c) => (c.status === 'ready' ? c.quit().then(() => undefined, () => c.disconnect()) : c.disconnect())));
  }
}

/** Redis takes whole milliseconds above zero; rounding up never expires a key early. */
function px(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

/** A lock without expiry would outlive a crashed holder forever, so a positive ttl is required. */
function assertLockTtl(ttlMs: number): void {
  if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new RangeError(`lock ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
}
