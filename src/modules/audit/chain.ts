import { createHash } from 'node:crypto';

/** The nil uuid: the chain of platform-level entries (sign-ins, workspace creation before a workspace exists). */
export const PLATFORM_CHAIN = '00000000-0000-0000-0000-000000000000';
export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedFields {
  workspaceId: string;
  seq: number;
  createdAt: string;
  userId: string | null;
  userEmail: string | null;
  apiKeyId: string | null;
  action: string;
  resource: string;
  resourceId: string | null;
  description: string;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  metadata: unknown;
}

/** JSON with object keys sorted at every level, so the same entry always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** hash = SHA-256(prev_hash + "\n" + canonical JSON of every field of the entry). */
export function entryHash(prevHash: string, fields: ChainedFields): string {
  return createHash('sha256').update(`${prevHash}\n${canonicalJson(fields)}`).digest('hex');
}
