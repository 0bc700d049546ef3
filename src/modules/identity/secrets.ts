import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import argon2 from 'argon2';
import { SiqError } from '../../errors.js';

/** A random opaque token (refresh, setup, invitation): 32 bytes, URL-safe. */
export function randomToken(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url');
}

/**
 * Opaque tokens are stored as SHA-256: they are 256-bit random, so a fast hash is enough (a slow
 * password hash is for guessable secrets), and lookups by hash stay indexable.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const COMMON_PASSWORDS = new Set([
  'password', 'password123', 'password1234', '123456789012', 'qwertyuiopas', 'letmeinletmein', 'iloveyou1234', 'administrator',
  'welcome12345', 'changeme1234', 'passw0rd1234', 'p@ssw0rd1234', 'qwerty123456', '1q2w3e4r5t6y', 'sentineliq123', 'correcthorse',
]);

/** The password policy: 12–256 characters, not a common password, not built on the email. */
export function checkPasswordPolicy(password: string, email?: string): string[] {
  const problems: string[] = [];
  if (typeof password !== 'string' || password.length < 12) problems.push('at least 12 characters');
  if (typeof password === 'string' && password.length > 256) problems.push('at most 256 characters');
  const lower = String(password).toLowerCase();
  if (COMMON_PASSWORDS.has(lower) || /^(.)\1+$/.test(lower)) problems.push('not a common or repeated password');
  const local = email?.split('@')[0]?.toLowerCase();
  if (local && local.length >= 4 && lower.includes(local)) problems.push('must not contain the email name');
  if (new Set(lower).size < 5) problems.push('at least 5 different characters');
  return problems;
}

export async function hashPassword(password: string, email?: string): Promise<string> {
  const problems = checkPasswordPolicy(password, email);
  if (problems.length > 0) throw new SiqError('SIQ_WEAK_PASSWORD', undefined, { details: problems });
  return argon2.hash(password, { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
}

// Verifying against this when the account does not exist keeps timing the same either way.
let dummyHash: Promise<string> | undefined;

export async function verifyPassword(hash: string | null | undefined, password: string): Promise<boolean> {
  if (!hash) {
    dummyHash ??= argon2.hash('not-a-real-password-only-for-timing', { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
    await argon2.verify(await dummyHash, password).catch(() => false);
    return false;
  }
  return argon2.verify(hash, password).catch(() => false);
}
