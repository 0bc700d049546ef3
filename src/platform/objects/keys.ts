import { SiqError } from '../../errors.js';

const MAX_KEY_BYTES = 1024;
// Letters (any script), digits, and a conservative set of punctuation that is safe in paths
// and in S3 keys alike.
const SEGMENT = /^[\p{L}\p{N}\-_.!()@=+,~ ]+$/u;

function invalid(key: string, why: string): SiqError {
  return new SiqError('SIQ_OBJECT_KEY_INVALID', `Object key ${JSON.stringify(key.slice(0, 200))} is not allowed: ${why}.`);
}

function checkSegments(key: string, segments: string[]): void {
  for (const segment of segments) {
    if (segment === '') throw invalid(key, 'empty path segment');
    if (segment === '.' || segment === '..') throw invalid(key, '"." and ".." segments are not allowed');
    if (!SEGMENT.test(segment)) throw invalid(key, 'only letters, digits, spaces and - _ . ! ( ) @ = + , ~ are allowed between slashes');
    if (segment !== segment.trim()) throw invalid(key, 'segments may not start or end with a space');
  }
}

/**
 * Checks that a key is a plain relative path, so no caller can escape its bucket (or DATA_DIR on
 * the local store): no absolute paths, no `..`, no backslashes, control characters or empty
 * segments. Both stores call it on every operation.
 */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw invalid(String(key), 'empty key');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw invalid(key, `longer than ${MAX_KEY_BYTES} bytes`);
  if (key.startsWith('/') || /^[A-Za-z]:/.test(key)) throw invalid(key, 'absolute paths are not allowed');
  if (key.includes('\\')) throw invalid(key, 'backslashes are not allowed');
  checkSegments(key, key.split('/'));
  return key;
}

/** Like `validateKey`, for listing prefixes: empty means everything, and a trailing `/` is fine. */
export function validatePrefix(prefix: string): string {
  if (prefix === '') return prefix;
  if (Buffer.byteLength(prefix) > MAX_KEY_BYTES) throw invalid(prefix, `longer than ${MAX_KEY_BYTES} bytes`);
  if (prefix.startsWith('/') || /^[A-Za-z]:/.test(prefix)) throw invalid(prefix, 'absolute paths are not allowed');
  if (prefix.includes('\\')) throw invalid(prefix, 'backslashes are not allowed');
  const trimmed = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const segments = trimmed.split('/');
  // The last segment of a prefix may be partial ("inc" matches "incidents/…"), but never "." or "..".
  checkSegments(prefix, segments);
  return prefix;
}

/** Metadata names are sent as HTTP headers by S3: keep them to lower-case tokens. */
export function validateMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(metadata ?? {})) {
    if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(name)) throw new SiqError('SIQ_VALIDATION', `Metadata name ${JSON.stringify(name)} must be lower-case letters, digits and dashes.`);
    if (typeof value !== 'string' || /[^\x20-\x7e]/.test(value)) throw new SiqError('SIQ_VALIDATION', `Metadata ${name} must be printable ASCII (encode other text first).`);
    result[name] = value;
  }
  return result;
}
