/**
 * Encodes rows in PostgreSQL's COPY text format: tab-separated, `\N` for NULL, backslash escapes
 * for the characters that would break the framing. Shared by both implementations so they load
 * byte-identical data.
 */

const NEEDS_ESCAPE = /[\\\t\n\r\0]/;

/** A text value for COPY: NULs dropped (PostgreSQL text cannot hold them), framing characters escaped. */
export function escapeCopyText(text: string): string {
  // Most values need nothing; one scan tells, and plain string replaces beat a regex callback.
  if (!NEEDS_ESCAPE.test(text)) return text;
  let out = text;
  if (out.includes('\0')) out = out.replaceAll('\0', '');
  if (out.includes('\\')) out = out.replaceAll('\\', '\\\\');
  if (out.includes('\t')) out = out.replaceAll('\t', '\\t');
  if (out.includes('\n')) out = out.replaceAll('\n', '\\n');
  if (out.includes('\r')) out = out.replaceAll('\r', '\\r');
  return out;
}

const dropNul = (_key: string, v: unknown): unknown => (typeof v === 'string' && v.includes('\0') ? v.replaceAll('\0', '') : v);

/** JSON text of a value for a json/jsonb column (NULs dropped from strings, as jsonb refuses `\u0000`). */
export function jsonText(value: unknown): string {
  const json = JSON.stringify(value);
  // The replacer makes stringify several times slower, so it runs only when a NUL may be there
  // (the test also matches an escaped backslash before "u0000", which the replacer keeps).
  return json.includes('\\u0000') ? JSON.stringify(value, dropNul) : json;
}

/** An object as JSON for a json/jsonb column, in COPY text. */
export function encodeCopyJson(value: unknown): string {
  return copyJson(jsonText(value));
}

/**
 * JSON text as a COPY text value. JSON text never holds a raw tab, newline, CR or NUL
 * (stringify escapes control characters): only backslashes need doubling.
 */
export function copyJson(json: string): string {
  return json.includes('\\') ? json.replaceAll('\\', '\\\\') : json;
}

export function encodeCopyValue(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'string') return escapeCopyText(value);
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `\\\\x${value.toString('hex')}`;
  return encodeCopyJson(value);
}

export function encodeCopyRow(row: readonly unknown[]): string {
  let line = '';
  for (let i = 0; i < row.length; i++) line += (i === 0 ? '' : '\t') + encodeCopyValue(row[i]);
  return `${line}\n`;
}
