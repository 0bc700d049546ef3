import type { FastifyReply, FastifyRequest } from 'fastify';
import { SiqError } from '../errors.js';
import type { Cache } from '../platform/cache/types.js';

export interface LimitSpec {
  points: number;
  windowMs: number;
}

/** The named limits and their defaults; RATE_LIMITS overrides any of them (`name=points/window`). */
export const defaultLimits = {
  /** Workspaces one user may create. */
  'workspace-create': { points: 5, windowMs: 60 * 60_000 },
  /** Updates to one workspace (rename, members, keys, policies). */
  'workspace-update': { points: 30, windowMs: 60_000 },
  /** Invitations sent from one workspace. */
  invitation: { points: 10, windowMs: 60_000 },
  /** Sign-in attempts from one IP address. */
  'sign-in': { points: 20, windowMs: 15 * 60_000 },
  /** Requests made with one API key. */
  'api-key': { points: 1200, windowMs: 60_000 },
} satisfies Record<string, LimitSpec>;

export type LimitName = keyof typeof defaultLimits;
export type Limits = Record<LimitName, LimitSpec>;

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `workspace-create=5/1h,invitation=10/1m` over the defaults; throws on unknown names or bad syntax. */
export function parseLimits(text: string): Limits {
  const limits: Limits = { ...defaultLimits };
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([a-z-]+)=(\d+)\/(\d*)([smhd])$/.exec(part);
    if (!match) throw new Error(`RATE_LIMITS entry "${part}" must look like name=points/window, e.g. invitation=10/1m`);
    const [, name, points, count, unit] = match;
    if (!(name! in defaultLimits)) throw new Error(`RATE_LIMITS names an unknown limit "${name}"; known: ${Object.keys(defaultLimits).join(', ')}`);
    limits[name as LimitName] = { points: Number(points), windowMs: Number(count || 1) * UNITS[unit!]! };
  }
  return limits;
}

export interface LimitResult {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Milliseconds until the window resets. */
  resetMs: number;
}

/**
 * Counts one use of a named limit for `key` in a fixed window held in the cache layer, so every
 * process sharing Redis shares the count (atomic INCR; the window's expiry is set when it opens).
 */
export async function consume(cache: Cache, name: LimitName, key: string, spec: LimitSpec): Promise<LimitResult> {
  const counterKey = `ratelimit:${name}:${key}`;
  const used = await cache.incr(counterKey, { ttlMs: spec.windowMs });
  const ttl = (await cache.ttl(counterKey)) ?? spec.windowMs;
  return { allowed: used <= spec.points, limit: spec.points, remaining: Math.max(0, spec.points - used), resetMs: ttl };
}

/** Sets the RateLimit headers and throws SIQ_RATE_LIMITED (429, Retry-After) when the limit is spent. */
export async function enforce(request: FastifyRequest, reply: FastifyReply, name: LimitName, key: string): Promise<void> {
  const { cache } = request.server.platform;
  const spec = request.server.limits[name];
  const result = await consume(cache, name, key, spec);
  const resetSeconds = Math.max(1, Math.ceil(result.resetMs / 1000));
  reply.header('ratelimit-limit', result.limit);
  reply.header('ratelimit-remaining', result.remaining);
  reply.header('ratelimit-reset', resetSeconds);
  if (!result.allowed) {
    reply.header('retry-after', resetSeconds);
    throw new SiqError('SIQ_RATE_LIMITED', `Rate limit "${name}" reached (${spec.points} per ${Math.round(spec.windowMs / 1000)} s). Retry after ${resetSeconds} s.`, { details: { limit: name } });
  }
}
