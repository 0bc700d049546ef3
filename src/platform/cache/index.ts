import { MemoryCache } from './memory.js';
import { RedisCache } from './redis.js';
import type { Cache } from './types.js';

export type { Cache, Lock } from './types.js';
export { MemoryCache, type MemoryCacheOptions } from './memory.js';
export { RedisCache, type RedisCacheOptions } from './redis.js';

/**
 * Redis when REDIS_URL is set (state shared by every process), otherwise the in-process cache.
 * Takes `Config['redis']` as it is. `onError` receives connection errors and exceptions thrown
 * by subscribers, which are reported rather than allowed to end the process.
 *
 * @example
 * const cache = createCache({ tls: false, keyPrefix: 'siq:' });
 * await cache.set('greeting', 'hello', { ttlMs: 60_000 });
 */
export function createCache(config: { url?: string; password?: string; tls: boolean; tlsCaFile?: string; keyPrefix: string }, onError?: (err: Error) => void): Cache {
  if (config.url) return new RedisCache({ url: config.url, password: config.password, tls: config.tls, tlsCaFile: config.tlsCaFile, keyPrefix: config.keyPrefix, onError });
  return new MemoryCache({ onError });
}
