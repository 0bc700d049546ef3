/**
 * Redaction of secrets in log records. Two nets: values under sensitive keys are replaced
 * whole, and secret-looking fragments inside any string (bearer tokens, `password=…`, cookies,
 * credentials in URLs, JWTs) are replaced in place. Applied to every finished log line, so it
 * also covers what serializers (Fastify's request/response) and error messages produce.
 */
export const REDACTED = '[Redacted]';

// A key is sensitive when a word in it (split on case, digits, - _ .) is one of these, or when
// it ends in "key" as in secretKey/S3_SECRET_KEY/apiKey but is not a harmless *key* like keyPrefix.
const SENSITIVE_WORDS = new Set([
  'password', 'passwd', 'pwd', 'pass', 'passphrase', 'secret', 'secrets', 'token', 'tokens', 'authorization', 'auth',
  'cookie', 'cookies', 'credential', 'credentials', 'jwt', 'session', 'sessionid', 'signature', 'otp', 'totp', 'apikey', 'privatekey',
]);
const SENSITIVE_KEY_SUFFIX = /(secret|private|api|access|signing|encryption|master|session)[-_ .]?key$/i;
const HARMLESS = new Set(['tokencount', 'tokens_used', 'keyprefix', 'key_prefix', 'passed', 'authorized', 'authmethod', 'auth_method']);

function words(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z]+/)
    .filter(Boolean);
}

export function isSensitiveKey(key: string): boolean {
  const lower = key.toLowerCase();
  if (HARMLESS.has(lower)) return false;
  if (SENSITIVE_KEY_SUFFIX.test(key)) return true;
  if (lower === 'set-cookie' || lower === 'x-api-key' || lower === 'proxy-authorization') return true;
  return words(key).some((w) => SENSITIVE_WORDS.has(w));
}

const STRING_RULES: Array<[RegExp, string | ((...m: string[]) => string)]> = [
  // Authorization schemes followed by a credential.
  [/\b(Bearer|Basic|Digest|Token)\s+[A-Za-z0-9._~+/=-]{4,}/gi, (_m, scheme) => `${scheme} ${REDACTED}`],
  // JWTs wherever they stand.
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // Credentials in URLs: scheme://user:password@host
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]+@/gi, (_m, prefix) => `${prefix}${REDACTED}@`],
  // key=value, key: value and "key":"value" for sensitive names.
  [/(["']?)\b([\w.-]*(?:password|passwd|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|session[-_]?id|authorization|cookie)[\w.-]*)\1(\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,;&}"']+)/gi,
    (_m, quote, key, sep, value) => `${quote}${key}${quote}${sep}${value.startsWith('"') ? `"${REDACTED}"` : value.startsWith("'") ? `'${REDACTED}'` : REDACTED}`],
  // Cookie headers written out as text.
  [/\b(Cookie|Set-Cookie):\s*[^\r\n]+/gi, (_m, name) => `${name}: ${REDACTED}`],
];

/** Replaces secret-looking fragments inside free text. */
export function redactString(text: string): string {
  let out = text;
  for (const [pattern, replacement] of STRING_RULES) out = out.replace(pattern, replacement as string);
  return out;
}

const MAX_DEPTH = 12;

/** A deep copy of `value` with sensitive keys' values and secret-looking strings redacted. Cycle-safe. */
export function redactValue(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = isSensitiveKey(key) && v !== null && v !== undefined && v !== '' ? REDACTED : redactValue(v, depth + 1, seen);
  }
  return out;
}

/** Redacts one serialized JSON log line; a line that is not JSON is scrubbed as text. */
export function redactLine(line: string): string {
  try {
    return JSON.stringify(redactValue(JSON.parse(line)));
  } catch {
    return redactString(line);
  }
}
