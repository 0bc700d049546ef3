import { SiqError } from '../../errors.js';

// Helpers for list endpoints that page by keyset, `(time, id) < (cursor)` newest first, and
// filter with ILIKE on user text.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/** The opaque cursor of the last row of a page: its sort time (ISO 8601, UTC) and id. */
export function encodeCursor(time: string, id: string): string {
  return Buffer.from(`${time}|${id}`, 'utf8').toString('base64url');
}

/** Reads a cursor made by `encodeCursor`; SIQ_VALIDATION for anything else. */
export function decodeCursor(cursor: string): { time: string; id: string } {
  const [time, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (!time || !id || !UUID.test(id) || !ISO_UTC.test(time)) throw new SiqError('SIQ_VALIDATION', 'The cursor is invalid: pass nextCursor from the previous page unchanged.');
  return { time, id };
}

/** User text as a literal inside a LIKE/ILIKE pattern (with the default `\` escape). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
