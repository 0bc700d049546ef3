import { MemoryCache } from './memory.js';
import { RedisCache } from './redis.js';
import type { Cache } from './types.js';

export type { Cache, Lock } from './types.js';
export { MemoryCache } from './memory.js';
export { RedisCache } from './redis.js';

/** Redis when REDIS_URL is set, otherwise the in-process cache. */
export function createCache(config: { url?: string; password?: string; tls: boolean; tlsCaFile?: string; keyPrefix: string }, onError?: (err: Error) => void): Cache {
  if (config.url) return new RedisCache({ url: config.url, password: config.password, tls: config.tls, tlsCaFile: config.tlsCaFile, keyPrefix: config.keyPrefix, onError });
  return new MemoryCache();
}
