/**
 * Encodes rows in PostgreSQL's COPY text format: tab-separated, `\N` for NULL, backslash escapes
 * for the characters that would break the framing. Shared by both implementations so they load
 * byte-identical data.
 */
export function encodeCopyValue(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'bigint') text = String(value);
  else if (typeof value === 'boolean') text = value ? 't' : 'f';
  else if (value instanceof Date) text = value.toISOString();
  else if (Buffer.isBuffer(value)) text = `\\x${value.toString('hex')}`;
  // jsonb refuses \u0000 too, so strings inside objects lose their NULs the same way.
  else text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' && v.includes('\0') ? v.replaceAll('\0', '') : v));
  // NUL cannot be stored in PostgreSQL text at all; drop it rather than fail the whole batch.
  if (text.includes('\0')) text = text.replaceAll('\0', '');
  return text.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

export function encodeCopyRow(row: readonly unknown[]): string {
  return `${row.map(encodeCopyValue).join('\t')}\n`;
}
