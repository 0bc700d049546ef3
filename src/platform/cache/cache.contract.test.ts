import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/helpers/ports.js';
import { testRedisUrl, uniqueName } from '../../../test/helpers/services.js';
import { startTcpProxy } from '../../../test/helpers/tcp-proxy.js';
import { MemoryCache } from './memory.js';
import { RedisCache } from './redis.js';
import type { Cache } from './types.js';

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Target {
  /** Two handles on the same store: two processes for Redis, the same instance for memory. */
  open(): Promise<[Cache, Cache]>;
}

const implementations: Array<{ name: string; enabled: boolean; target: Target }> = [
  {
    name: 'memory',
    enabled: true,
    target: {
      async open() {
        const cache = new MemoryCache();
        return [cache, cache];
      },
    },
  },
  {
    name: 'redis',
    enabled: Boolean(testRedisUrl),
    target: {
      async open() {
        const keyPrefix = `${uniqueName('siqtest')}:`;
        return [new RedisCache({ url: testRedisUrl!, keyPrefix }), new RedisCache({ url: testRedisUrl!, keyPrefix })];
      },
    },
  },
];

describe.each(implementations)('Cache contract: $name', ({ enabled, target }) => {
  let a: Cache;
  let b: Cache;

  beforeAll(async () => {
    if (enabled) [a, b] = await target.open();
  });
  afterAll(async () => {
    if (!enabled) return;
    await a.close();
    if (b !== a) await b.close();
  });

  it.skipIf(!enabled)('gets, sets and deletes', async () => {
    expect(await a.get('k1')).toBeNull();
    await a.set('k1', 'v1');
    expect(await b.get('k1')).toBe('v1');
    await a.set('k1', 'v2');
    expect(await a.get('k1')).toBe('v2');
    expect(await a.delete('k1')).toBe(true);
    expect(await a.delete('k1')).toBe(false);
    expect(await a.get('k1')).toBeNull();
  });

  it.skipIf(!enabled)('expires keys after their TTL', async () => {
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
  });

  it.skipIf(!enabled)('sets only when absent', async () => {
    expect(await a.setIfAbsent('once', '1', { ttlMs: 100 })).toBe(true);
    expect(await b.setIfAbsent('once', '2')).toBe(false);
    expect(await a.get('once')).toBe('1');
    await eventually(async () => (await a.get('once')) === null);
    expect(await b.setIfAbsent('once', '3')).toBe(true);
    expect(await a.get('once')).toBe('3');
  });

  it.skipIf(!enabled)('counts atomically under concurrency, from every handle', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).incr('counter')));
    expect(new Set(results).size).toBe(200);
    expect(Math.max(...results)).toBe(200);
    expect(await a.get('counter')).toBe('200');
    expect(await a.incr('counter', { by: 5 })).toBe(205);
    expect(await a.incr('counter', { by: -10 })).toBe(195);
  });

  it.skipIf(!enabled)('sets a counter expiry when the counter is created and leaves it alone afterwards', async () => {
    expect(await a.incr('window', { ttlMs: 300 })).toBe(1);
    const first = (await a.ttl('window'))!;
    await new Promise((r) => setTimeout(r, 60));
    expect(await b.incr('window', { ttlMs: 300 })).toBe(2);
    const second = (await a.ttl('window'))!;
    expect(second).toBeLessThan(first);
    await eventually(async () => (await a.get('window')) === null);
    expect(await a.incr('window', { ttlMs: 300 })).toBe(1);
  });

  it.skipIf(!enabled)('delivers published messages to subscribers of other handles until they unsubscribe', async () => {
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
    await a.publish('news', 'three');
    await a.publish('other', 'ping');
    await eventually(() => other.length === 1);
    expect(received).toEqual(['one', 'two']);
    await unsubscribeOther();
  });

  it.skipIf(!enabled)('holds a lock for one owner until release or expiry', async () => {
    const lock = await a.acquireLock('job', 5000);
    expect(lock).not.toBeNull();
    expect(await b.acquireLock('job', 5000)).toBeNull();
    expect(await lock!.release()).toBe(true);
    expect(await lock!.release()).toBe(false);
    const again = await b.acquireLock('job', 5000);
    expect(again).not.toBeNull();
    await again!.release();
  });

  it.skipIf(!enabled)('lets a stale holder neither release nor extend a lock taken over after expiry', async () => {
    const stale = await a.acquireLock('takeover', 80);
    expect(stale).not.toBeNull();
    let fresh: Awaited<ReturnType<Cache['acquireLock']>> = null;
    await eventually(async () => (fresh = await b.acquireLock('takeover', 5000)) !== null);
    expect(await stale!.release()).toBe(false);
    expect(await stale!.extend(5000)).toBe(false);
    expect(await a.acquireLock('takeover', 5000)).toBeNull();
    expect(await fresh!.extend(10_000)).toBe(true);
    expect(await fresh!.release()).toBe(true);
  });

  it.skipIf(!enabled)('extends a lock it owns', async () => {
    const lock = (await a.acquireLock('extend', 100))!;
    expect(await lock.extend(5000)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(await b.acquireLock('extend', 5000)).toBeNull();
    await lock.release();
  });

  it.skipIf(!enabled)('answers ping while open, and refuses work after close', async () => {
    await expect(a.ping()).resolves.toBeUndefined();
    const [c, d] = await target.open();
    await c.close();
    if (d !== c) await d.close();
    await expect(c.ping()).rejects.toThrow();
  });
});

describe.skipIf(!testRedisUrl)('RedisCache when the server goes away', () => {
  it('fails ping fast when nothing listens', async () => {
    const cache = new RedisCache({ url: `redis://127.0.0.1:${await freePort()}`, keyPrefix: 'x:', pingTimeoutMs: 500 });
    try {
      await expect(cache.ping()).rejects.toThrow(/not connected|did not answer/);
    } finally {
      await cache.close();
    }
  });

  it('reports down while the connection is cut and recovers by itself', async () => {
    const redis = new URL(testRedisUrl!);
    const proxy = await startTcpProxy(redis.hostname, Number(redis.port || 6379));
    const cache = new RedisCache({ url: `redis://127.0.0.1:${proxy.port}`, keyPrefix: `${uniqueName('siqproxy')}:`, pingTimeoutMs: 500 });
    try {
      await eventually(() => cache.ping().then(() => true, () => false), 5000);
      await cache.set('survives', 'yes');
      await proxy.cut();
      await expect(cache.ping()).rejects.toThrow();
      await proxy.restore();
      await eventually(() => cache.ping().then(() => true, () => false), 10_000);
      expect(await cache.get('survives')).toBe('yes');
    } finally {
      await cache.close();
      await proxy.stop();
    }
  });
});
