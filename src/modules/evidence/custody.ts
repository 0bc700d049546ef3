import { createHash } from 'node:crypto';
import { canonicalJson, GENESIS_HASH } from '../audit/chain.js';

export { GENESIS_HASH } from '../audit/chain.js';

export const CUSTODY_ACTIONS = ['upload', 'view', 'download', 'export', 'verify', 'delete'] as const;
export type CustodyAction = (typeof CUSTODY_ACTIONS)[number];

/** The fields of a custody entry that its hash covers (everything but the hashes themselves). */
export interface CustodyFields {
  evidenceId: string;
  workspaceId: string;
  seq: number;
  action: CustodyAction;
  /** ISO-8601 with milliseconds, UTC. */
  at: string;
  actorUserId: string | null;
  actorEmail: string | null;
  actorApiKeyId: string | null;
  ip: string | null;
  requestId: string | null;
  details: Record<string, unknown>;
}

export interface CustodyEntry extends CustodyFields {
  prevHash: string;
  hash: string;
}

/**
 * hash = SHA-256 over the previous entry's hash (64 zeros for the first), a newline, and the
 * canonical JSON of the entry's fields (keys sorted at every level, no whitespace): the same
 * construction as the audit log (modules/audit/chain.ts), so one verifier recipe fits both.
 */
export function custodyHash(prevHash: string, fields: CustodyFields): string {
  return createHash('sha256').update(`${prevHash}\n${canonicalJson(fields)}`).digest('hex');
}

export function fieldsOf(entry: CustodyEntry): CustodyFields {
  const { prevHash: _prev, hash: _hash, ...fields } = entry;
  return fields;
}

/**
 * Checks a chain: sequence numbers 1..n without gaps, each entry linked to the previous hash,
 * each hash recomputed, the first entry an upload. Returns every problem found (empty: intact).
 */
export function verifyChain(entries: readonly CustodyEntry[], expected: { evidenceId: string; sha256: string; size: number }): string[] {
  const problems: string[] = [];
  if (entries.length === 0) return ['the custody chain is empty'];
  let prev = GENESIS_HASH;
  entries.forEach((entry, i) => {
    const n = i + 1;
    if (entry.seq !== n) problems.push(`entry ${n}: sequence number is ${entry.seq}, expected ${n} (an entry is missing or inserted)`);
    if (entry.evidenceId !== expected.evidenceId) problems.push(`entry ${n}: belongs to evidence ${entry.evidenceId}`);
    if (entry.prevHash !== prev) problems.push(`entry ${n}: previous hash ${entry.prevHash} does not match the hash before it (${prev})`);
    const recomputed = custodyHash(entry.prevHash, fieldsOf(entry));
    if (recomputed !== entry.hash) problems.push(`entry ${n} (${entry.action}): stored hash ${entry.hash} does not match its content (recomputed ${recomputed})`);
    prev = entry.hash;
  });
  const first = entries[0]!;
  if (first.action !== 'upload') problems.push(`entry 1 is "${first.action}", not the upload`);
  else {
    if (first.details.sha256 !== expected.sha256) problems.push(`the upload entry records SHA-256 ${String(first.details.sha256)}, the evidence record says ${expected.sha256}`);
    if (first.details.size !== expected.size) problems.push(`the upload entry records ${String(first.details.size)} bytes, the evidence record says ${expected.size}`);
  }
  const deleteAt = entries.findIndex((e) => e.action === 'delete');
  if (deleteAt >= 0 && deleteAt !== entries.length - 1) problems.push(`entries follow the deletion entry (${deleteAt + 1})`);
  return problems;
}
