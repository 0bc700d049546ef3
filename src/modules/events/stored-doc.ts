import { jsonText } from '../../platform/db/copy-encoding.js';
import type { NormalizedEvent } from '../ingest/normalize.js';

/**
 * How an event's document is stored. `normalize()` puts the event's message in `doc.message`
 * (copied from `Message`, `msg`, `log`, … when the event named it otherwise), and the `message`
 * column holds the same text for the full-text index. Storing it a second time inside the jsonb
 * was, for Windows events (whose original `Message` is kept too), the largest single cost of an
 * insert after the text index. So the stored document leaves `message` out when it equals the
 * column, and every read puts it back with `eventDocSql()`: readers see the document
 * `normalize()` made.
 */
export function storedDocJson(e: NormalizedEvent): string {
  const doc = e.doc;
  const message = doc.message;
  if (typeof message !== 'string' || message !== e.message) return jsonText(doc);
  // JSON.stringify skips undefined members; the property itself stays (no shape change), and
  // nothing else runs between the two assignments.
  doc.message = undefined;
  try {
    return jsonText(doc);
  } finally {
    doc.message = message;
  }
}

/**
 * The SQL of an event's whole document (`doc` with `message` restored from its column), for
 * every query that returns documents. `alias` qualifies the columns (`e` → `e.doc`).
 */
export function eventDocSql(alias?: string): string {
  const q = alias ? `${alias}.` : '';
  return `CASE WHEN ${q}message IS NULL OR ${q}doc ? 'message' THEN ${q}doc ELSE ${q}doc || jsonb_build_object('message', ${q}message) END`;
}
