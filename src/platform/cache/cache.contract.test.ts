import { createServer, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/helpers/ports.js';
import { testRedisUrl, uniqueName } from '../../../test/helpers/services.js';
import { startTcpProxy } from '../../../test/helpers/tcp-proxy.js';
import { createCache } from './index.js';
import { MemoryCache } from './memory.js';
import { RedisCache } from './redis.js';
import type { Cache, Lock } from './types.js';

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves to how long `promise` took to reject; fails when it resolves. */
async function rejectsWithin(promise: Promise<unknown>, pattern?: RegExp): Promise<number> {
  const started = Date.now();
  await expect(promise).rejects.toThrow(pattern);
  return Date.now() - started;
}

/**
 * Opens two handles on one store, with a key prefix of their own: two processes for Redis (two
 * RedisCache objects, so pub/sub crosses connections), the same instance for memory.
 */
type Open = (options?: { onError?: (err: Error) => void }) => Promise<[Cache, Cache]>;

/** The one suite every Cache implementation must pass. */
function cacheContract(open: Open): void {
  let a: Cache;
  let b: Cache;

  beforeAll(async () => {
    [a, b] = await open();
  });
  afterAll(async () => {
    await a.close();
    if (b !== a) await b.close();
  });

  it('gets, sets and deletes', async () => {
    expect(await a.get('k1')).toBeNull();
    await a.set('k1', 'v1');
    expect(await b.get('k1')).toBe('v1');
    await a.set('k1', 'v2');
    expect(await a.get('k1')).toBe('v2');
    expect(await a.delete('k1')).toBe(true);
    expect(await a.delete('k1')).toBe(false);
    expect(await a.get('k1')).toBeNull();
    await a.set('empty', '');
    expect(await b.get('empty')).toBe('');
  });

  it('expires keys after their TTL', async () => {
    await a.set('short', 'x', { ttlMs: 80 });
    await a.set('long', 'y', { ttlMs: 60_000 });
    expect(await a.get('short')).toBe('x');
    const ttl = await a.ttl('long');
    expect(ttl).toBeGreaterThan(59_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await eventually(async () => (await a.get('short')) === null);
    expect(await a.get('long')).toBe('y');
    await a.set('forever', 'z');
    expect(await a.ttl('forever')).toBeNull();
    expect(await a.ttl('absent')).toBeNull();
    // Setting again without a ttl makes the key permanent, as Redis SET does.
    await a.set('long', 'y2');
    expect(await a.ttl('long')).toBeNull();
  });

  it('sets only when absent', async () => {
    expect(await a.setIfAbsent('once', '1', { ttlMs: 100 })).toBe(true);
    expect(await b.setIfAbsent('once', '2')).toBe(false);
    expect(await a.get('once')).toBe('1');
    await eventually(async () => (await a.get('once')) === null);
    expect(await b.setIfAbsent('once', '3')).toBe(true);
    expect(await a.get('once')).toBe('3');
    expect(await a.ttl('once')).toBeNull();
  });

  it('counts atomically under concurrency, from every handle', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).incr('counter')));
    expect(new Set(results).size).toBe(200);
    expect(Math.max(...results)).toBe(200);
    expect(await a.get('counter')).toBe('200');
    expect(await a.incr('counter', { by: 5 })).toBe(205);
    expect(await a.incr('counter', { by: -10 })).toBe(195);
  });

  it('refuses to count on text or by fractions', async () => {
    await a.set('text', 'abc');
    await expect(a.incr('text')).rejects.toThrow(/not an integer/);
    expect(await a.get('text')).toBe('abc');
    await expect(a.incr('fraction', { by: 1.5 })).rejects.toThrow();
    expect(await a.get('fraction')).toBeNull();
  });

  it('sets a counter expiry when the counter is created and leaves it alone afterwards', async () => {
    expect(await a.incr('window', { ttlMs: 300 })).toBe(1);
    const first = (await a.ttl('window'))!;
    expect(first).toBeGreaterThan(0);
    await sleep(60);
    expect(await b.incr('window', { ttlMs: 300 })).toBe(2);
    const second = (await a.ttl('window'))!;
    expect(second).toBeLessThan(first);
    await eventually(async () => (await a.get('window')) === null);
    expect(await a.incr('window', { ttlMs: 300 })).toBe(1);

    // A counter created without a window does not gain one later.
    expect(await a.incr('plain')).toBe(1);
    expect(await a.incr('plain', { ttlMs: 300 })).toBe(2);
    expect(await a.ttl('plain')).toBeNull();
  });

  it('keeps a sliding window shared by every handle: counts, distinct members, later times win, old ones drop', async () => {
    const minute = 60_000;
    const t0 = 1_700_000_000_000;
    expect(await a.windowAdd('win', 'e1', t0, minute)).toEqual({ count: 1 });
    expect(await b.windowAdd('win', 'e2', t0 + 10_000, minute)).toEqual({ count: 2 });
    // The same member again counts once and keeps its later time.
    expect((await a.windowAdd('win', 'e1', t0 + 20_000, minute)).count).toBe(2);
    // An out-of-order earlier time does not move a member back.
    await b.windowAdd('win', 'e1', t0 + 5_000, minute);
    const state = await a.windowAdd('win', 'e3', t0 + 75_000, minute, { withMembers: true });
    // e2 (t0+10s) fell out of the minute ending at t0+75s; e1 moved to t0+20s and stays.
    expect(state).toEqual({ count: 2, members: [{ member: 'e1', at: t0 + 20_000 }, { member: 'e3', at: t0 + 75_000 }] });
    expect(await b.delete('win')).toBe(true);
    expect(await a.windowAdd('win', 'e4', t0, minute)).toEqual({ count: 1 });
    const ttl = await b.ttl('win');
    expect(ttl).not.toBeNull();
    expect(ttl!).toBeLessThanOrEqual(minute);
    const parallel = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).windowAdd('win2', `m${i}`, t0 + i, minute)));
    expect(Math.max(...parallel.map((p) => p.count))).toBe(50);
  });

  it('delivers published messages to subscribers of other handles until they unsubscribe', async () => {
    const received: string[] = [];
    const unsubscribe = await b.subscribe('news', (m) => received.push(m));
    const other: string[] = [];
    const unsubscribeOther = await b.subscribe('other', (m) => other.push(m));
    await a.publish('news', 'one');
    await a.publish('news', 'two');
    await eventually(() => received.length === 2);
    expect(received).toEqual(['one', 'two']);
    expect(other).toEqual([]);
    await unsubscribe();
    await unsubscribe();
    await a.publish('news', 'three');
    await a.publish('other', 'ping');
    await eventually(() => other.length === 1);
    expect(received).toEqual(['one', 'two']);
    await unsubscribeOther();
  });

  it('never runs subscribers inside the publish call', async () => {
    const received: string[] = [];
    const unsubscribe = await a.subscribe('async', (m) => received.push(m));
    const published = a.publish('async', 'x');
    expect(received).toEqual([]);
    await published;
    await eventually(() => received.length === 1);
    await unsubscribe();
  });

  it('treats each subscription on its own, even with the same handler on the same channel', async () => {
    const received: string[] = [];
    const handler = (m: string) => received.push(m);
    const [first, second] = await Promise.all([b.subscribe('twice', handler), b.subscribe('twice', handler)]);
    await a.publish('twice', 'both');
    await eventually(() => received.length === 2);
    await first();
    await a.publish('twice', 'one');
    await eventually(() => received.length === 3);
    await second();
    await a.publish('twice', 'none');
    // A marker on another channel shows the message above had time to arrive and did not.
    const marker: string[] = [];
    const unsubscribeMarker = await b.subscribe('twice-marker', (m) => marker.push(m));
    await a.publish('twice-marker', 'done');
    await eventually(() => marker.length === 1);
    expect(received).toEqual(['both', 'both', 'one']);
    await unsubscribeMarker();
  });

  it('reports a throwing subscriber and keeps delivering to the others', async () => {
    const errors: Error[] = [];
    const [publisher, subscriber] = await open({ onError: (err) => errors.push(err) });
    try {
      const received: string[] = [];
      await subscriber.subscribe('error', () => {
        throw new Error('subscriber bug');
      });
      await subscriber.subscribe('error', (m) => received.push(m));
      await publisher.publish('error', 'still delivered');
      const bugs = () => errors.filter((e) => e.message === 'subscriber bug');
      await eventually(() => received.length === 1 && bugs().length === 1);
      expect(received).toEqual(['still delivered']);
    } finally {
      await publisher.close();
      if (subscriber !== publisher) await subscriber.close();
    }
  });

  it('holds a lock for one owner until release or expiry', async () => {
    const lock = await a.acquireLock('job', 5000);
    expect(lock).not.toBeNull();
    expect(lock!.name).toBe('job');
    expect(await b.acquireLock('job', 5000)).toBeNull();
    expect(await lock!.release()).toBe(true);
    expect(await lock!.release()).toBe(false);
    const again = await b.acquireLock('job', 5000);
    expect(again).not.toBeNull();
    expect(await again!.release()).toBe(true);
  });

  it('hands a lock to exactly one of many concurrent contenders', async () => {
    const locks = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).acquireLock('contended', 5000)));
    const held = locks.filter((l): l is Lock => l !== null);
    expect(held).toHaveLength(1);
    expect(await held[0]!.release()).toBe(true);
  });

  it('lets a stale holder neither release nor extend a lock taken over after expiry', async () => {
    const stale = await a.acquireLock('takeover', 80);
    expect(stale).not.toBeNull();
    let fresh: Lock | null = null;
    await eventually(async () => (fresh = await b.acquireLock('takeover', 5000)) !== null);
    expect(await stale!.release()).toBe(false);
    expect(await stale!.extend(5000)).toBe(false);
    expect(await a.acquireLock('takeover', 5000)).toBeNull();
    expect(await fresh!.extend(10_000)).toBe(true);
    expect(await a.ttl('lock:takeover')).toBeGreaterThan(9000);
    expect(await fresh!.release()).toBe(true);
  });

  it('extends a lock it owns', async () => {
    const lock = (await a.acquireLock('extend', 100))!;
    expect(await lock.extend(5000)).toBe(true);
    await sleep(200);
    expect(await b.acquireLock('extend', 5000)).toBeNull();
    expect(await lock.release()).toBe(true);
    expect(await lock.extend(5000)).toBe(false);
  });

  it('refuses locks that would never expire', async () => {
    await expect(a.acquireLock('no-ttl', 0)).rejects.toThrow(RangeError);
    await expect(a.acquireLock('no-ttl', -5)).rejects.toThrow(RangeError);
    const lock = (await a.acquireLock('no-ttl', 1000))!;
    await expect(lock.extend(0)).rejects.toThrow(RangeError);
    expect(await lock.release()).toBe(true);
  });

  it('answers ping as soon as it is opened, and refuses work after close', async () => {
    const [c, d] = await open();
    await expect(c.ping()).resolves.toBeUndefined();
    await expect(d.ping()).resolves.toBeUndefined();
    await c.close();
    if (d !== c) await d.close();
    await c.close();
    await expect(c.ping()).rejects.toThrow();
    await expect(c.get('k1')).rejects.toThrow();
    await expect(c.subscribe('news', () => {})).rejects.toThrow();
  });
}

const implementations: Array<{ name: string; available: boolean; open: Open }> = [
  {
    name: 'memory',
    available: true,
    async open(options) {
      const cache = new MemoryCache(options);
      return [cache, cache];
    },
  },
  {
    name: 'redis',
    available: testRedisUrl !== undefined,
    async open(options) {
      const keyPrefix = `${uniqueName('siqtest')}:`;
      return [new RedisCache({ url: testRedisUrl!, keyPrefix, ...options }), new RedisCache({ url: testRedisUrl!, keyPrefix, ...options })];
    },
  },
];

describe.each(implementations)('Cache contract: $name', ({ available, open }) => {
  describe.skipIf(!available)('behaves as a Cache', () => cacheContract(open));
});

describe('MemoryCache housekeeping', () => {
  it('sweeps expired keys nobody reads again', async () => {
    const cache = new MemoryCache({ sweepIntervalMs: 20 });
    try {
      for (let i = 0; i < 100; i++) await cache.set(`k${i}`, 'v', { ttlMs: 30 });
      await cache.set('kept', 'v');
      expect(cache.size).toBe(101);
      await eventually(() => cache.size === 1);
      expect(await cache.get('kept')).toBe('v');
    } finally {
      await cache.close();
    }
  });
});

describe('createCache', () => {
  it('picks Redis when a URL is set and memory otherwise', async () => {
    const memory = createCache({ tls: false, keyPrefix: 'x:' });
    expect(memory.kind).toBe('memory');
    await memory.close();
    // Nothing needs to listen: the choice is made from the config, and close does not wait.
    const redis = createCache({ url: `redis://127.0.0.1:${await freePort()}`, tls: false, keyPrefix: 'x:' }, () => {});
    expect(redis.kind).toBe('redis');
    await redis.close();
  });
});

describe.skipIf(!testRedisUrl)('RedisCache on a shared server', () => {
  it('keeps every key and channel under its prefix', async () => {
    const prefix = `${uniqueName('siqprefix')}:`;
    const mine = new RedisCache({ url: testRedisUrl!, keyPrefix: prefix });
    const theirs = new RedisCache({ url: testRedisUrl!, keyPrefix: `${uniqueName('siqprefix')}:` });
    const raw = new Redis(testRedisUrl!);
    try {
      await mine.set('shared-name', 'mine');
      await mine.incr('hits', { ttlMs: 60_000 });
      const lock = (await mine.acquireLock('job', 60_000))!;
      expect(await raw.get(`${prefix}shared-name`)).toBe('mine');
      expect(await raw.get(`${prefix}hits`)).toBe('1');
      expect(await raw.exists(`${prefix}lock:job`)).toBe(1);
      expect(await raw.exists('shared-name')).toBe(0);
      expect(await theirs.get('shared-name')).toBeNull();
      expect(await theirs.acquireLock('job', 1000)).not.toBeNull();

      const heard: string[] = [];
      await theirs.subscribe('news', (m) => heard.push(`theirs:${m}`));
      await mine.subscribe('news', (m) => heard.push(`mine:${m}`));
      expect(await raw.publish(`${prefix}news`, 'raw')).toBe(1);
      await mine.publish('news', 'hello');
      await eventually(() => heard.length === 2);
      await sleep(50);
      expect(heard).toEqual(['mine:raw', 'mine:hello']);
      await lock.release();
    } finally {
      await Promise.all([mine.close(), theirs.close(), raw.quit()]);
    }
  });
});

describe.skipIf(!testRedisUrl)('RedisCache when the server goes away', () => {
  it('fails ping fast when nothing listens', async () => {
    const errors: Error[] = [];
    const cache = new RedisCache({ url: `redis://127.0.0.1:${await freePort()}`, keyPrefix: 'x:', onError: (err) => errors.push(err) });
    try {
      expect(await rejectsWithin(cache.ping(), /not connected|did not answer/)).toBeLessThan(1100);
      await sleep(50);
      expect(await rejectsWithin(cache.ping(), /not connected|did not answer/)).toBeLessThan(1100);
      // Connection errors reach the listener instead of crashing the process.
      await eventually(() => errors.length > 0);
      expect((errors[0] as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    } finally {
      await cache.close();
    }
  });

  it('fails ping within its timeout when the server accepts but never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const cache = new RedisCache({ url: `redis://127.0.0.1:${port}`, keyPrefix: 'x:' });
    try {
      const took = await rejectsWithin(cache.ping(), /did not answer within 1000 ms/);
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(1500);
    } finally {
      const started = Date.now();
      await cache.close();
      expect(Date.now() - started).toBeLessThan(500);
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('reports down while the connection is cut and recovers by itself, subscriptions included', async () => {
    const redis = new URL(testRedisUrl!);
    const proxy = await startTcpProxy(redis.hostname, Number(redis.port || 6379));
    const keyPrefix = `${uniqueName('siqproxy')}:`;
    const cache = new RedisCache({ url: `redis://127.0.0.1:${proxy.port}`, keyPrefix, pingTimeoutMs: 500, onError: () => {} });
    const direct = new RedisCache({ url: testRedisUrl!, keyPrefix });
    try {
      await eventually(() => cache.ping().then(() => true, () => false), 5000);
      await cache.set('survives', 'yes');
      const heard: string[] = [];
      await cache.subscribe('news', (m) => heard.push(m));
      await direct.publish('news', 'before');
      await eventually(() => heard.includes('before'));

      await proxy.cut();
      expect(await rejectsWithin(cache.ping())).toBeLessThan(1000);
      // Ordinary commands give up after a bounded number of reconnection attempts instead of
      // waiting for Redis forever. A subscription attempted now fails too, and must not leave the
      // channel looking subscribed: the retry below has to really subscribe.
      const [getTook, subscribeTook] = await Promise.all([rejectsWithin(cache.get('survives')), rejectsWithin(cache.subscribe('late', () => {}))]);
      expect(getTook).toBeLessThan(5000);
      expect(subscribeTook).toBeLessThan(5000);
      expect(await rejectsWithin(cache.ping())).toBeLessThan(1000);

      await proxy.restore();
      await eventually(() => cache.ping().then(() => true, () => false), 10_000);
      expect(await cache.get('survives')).toBe('yes');
      // The subscriber connection reconnects and subscribes again by itself.
      await eventually(async () => {
        await direct.publish('news', 'after');
        await sleep(20);
        return heard.includes('after');
      }, 10_000);
      const late: string[] = [];
      await cache.subscribe('late', (m) => late.push(m));
      await direct.publish('late', 'arrives');
      await eventually(() => late.length === 1);
    } finally {
      await Promise.all([cache.close(), direct.close()]);
      await proxy.stop();
    }
  });
});
