/**
 * Cache and coordination: key-value with TTL, atomic counters, pub/sub and expiring locks.
 * `memory.ts` serves one process; `redis.ts` shares all of it between processes.
 * Keys and channels are plain strings; implementations add their own prefix.
 */
export interface Cache {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<string | null>;
  /** Stores a value; with `ttlMs` it disappears after that many milliseconds. */
  set(key: string, value: string, options?: { ttlMs?: number }): Promise<void>;
  /** Stores only when the key does not exist; true when it stored. */
  setIfAbsent(key: string, value: string, options?: { ttlMs?: number }): Promise<boolean>;
  /** True when the key existed. */
  delete(key: string): Promise<boolean>;
  /**
   * Adds `by` (default 1) atomically and returns the new value. With `ttlMs` the expiry is set
   * when the counter is created (fixed window) and left alone on later increments.
   */
  incr(key: string, options?: { by?: number; ttlMs?: number }): Promise<number>;
  /**
   * A sliding window (event counts, distinct values, rule sequences): adds `member` at time
   * `atMs` (a member added again keeps the later time), drops members older than
   * `atMs - windowMs`, and returns how many are left — with `withMembers`, also the members and
   * their times, oldest first. The window expires `windowMs` after its last addition. Clear it
   * with `delete`.
   */
  windowAdd(key: string, member: string, atMs: number, windowMs: number, options?: { withMembers?: boolean }): Promise<WindowState>;
  /** Milliseconds left before the key expires; null when it has no expiry or does not exist. */
  ttl(key: string): Promise<number | null>;
  publish(channel: string, message: string): Promise<void>;
  /** Calls `handler` for each message published on `channel` (by any process); returns an unsubscribe function. */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;
  /** Takes a named lock for `ttlMs` unless someone holds it; null when it is held. */
  acquireLock(name: string, ttlMs: number): Promise<Lock | null>;
  /** Throws when the cache is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface WindowState {
  count: number;
  members?: Array<{ member: string; at: number }>;
}

export interface Lock {
  readonly name: string;
  /** Releases the lock if this holder still owns it; false when it had expired or was taken over. */
  release(): Promise<boolean>;
  /** Extends the lock by `ttlMs` from now if this holder still owns it. */
  extend(ttlMs: number): Promise<boolean>;
}
