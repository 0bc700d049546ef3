import { createGunzip, createInflate } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SiqError } from '../../../errors.js';
import { workspaceAccess } from '../../../http/auth.js';
import { MAX_EVENT_BYTES } from '../normalize.js';
import type { IngestPipeline, ItemResult, RawItem } from '../pipeline.js';
import { authenticateShipper } from './shipper-auth.js';

/** Splits NDJSON into one item per non-blank line; a line that is not JSON is rejected alone. */
export function parseNdjson(text: string): RawItem[] {
  const items: RawItem[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    if (trimmed.length > MAX_EVENT_BYTES) {
      items.push({ error: 'too_large', message: `an event is larger than ${MAX_EVENT_BYTES} bytes` });
      continue;
    }
    try {
      items.push({ value: JSON.parse(trimmed) });
    } catch (err) {
      items.push({ error: 'invalid_json', message: `not valid JSON: ${(err as Error).message}` });
    }
  }
  return items;
}

/** A JSON body: an array of events or one event. A body that is not JSON at all is refused whole. */
export function parseJsonBody(text: string): RawItem[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SiqError('SIQ_BAD_REQUEST', `The body is not valid JSON (${(err as Error).message}). Send a JSON array, or NDJSON with Content-Type application/x-ndjson.`);
  }
  return (Array.isArray(parsed) ? parsed : [parsed]).map((value) => ({ value }));
}

/**
 * Request bodies of shippers arrive compressed more often than not; decompressing in preParsing
 * keeps Fastify's body limit on the decompressed size, so a gzip bomb is refused with 413.
 */
export function registerDecompression(app: FastifyInstance): void {
  app.addHook('preParsing', async (request, _reply, payload) => {
    const encoding = String(request.headers['content-encoding'] ?? '').toLowerCase();
    const decoder = encoding === 'gzip' || encoding === 'x-gzip' ? createGunzip() : encoding === 'deflate' ? createInflate() : null;
    if (!decoder) return payload;
    // Fastify compares Content-Length with the bytes that arrived on the wire, which the
    // decoded stream must report.
    const decoded = decoder as typeof decoder & { receivedEncodedLength: number };
    decoded.receivedEncodedLength = 0;
    payload.on('data', (chunk: Buffer) => (decoded.receivedEncodedLength += chunk.length));
    return payload.pipe(decoded);
  });
}

export function summarize(results: ItemResult[]) {
  const errors = results.flatMap((r, index) => (r.status === 'rejected' ? [{ index, reason: r.reason, message: r.message }] : []));
  return { received: results.length, stored: results.length - errors.length, rejected: errors.length, errors };
}

/** Pushback as the protocol expects: 503 with Retry-After when the queue is full. */
export function retryLater(reply: FastifyReply, err: unknown): never {
  if (err instanceof SiqError && err.code === 'SIQ_INGEST_BUSY') reply.header('retry-after', '1');
  throw err;
}

/**
 * `POST /api/v1/events` (API key) and `POST /api/v1/workspaces/:workspaceId/events` (API key
 * or a member allowed `events:ingest`): a JSON array, one JSON object, or NDJSON, optionally
 * gzip-compressed. Answers per item: what was stored and what was rejected, and why.
 */
export function httpSource(pipeline: IngestPipeline) {
  return async function routes(app: FastifyInstance): Promise<void> {
    registerDecompression(app);
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

    const handle = async (request: FastifyRequest, reply: FastifyReply, workspaceId: string) => {
      const type = String(request.headers['content-type'] ?? '');
      const text = String(request.body ?? '');
      const items = /ndjson|jsonlines|jsonl/.test(type) ? parseNdjson(text) : parseJsonBody(text);
      const results = await pipeline.ingest(workspaceId, 'http', items).catch((err: unknown) => retryLater(reply, err));
      return summarize(results);
    };

    app.post('/events', { config: { audit: false }, schema: { tags: ['ingest'], summary: 'Send events with an API key (JSON array, object or NDJSON; gzip accepted)' } }, async (request, reply) =>
      handle(request, reply, await authenticateShipper(request, reply)));
    app.post<{ Params: { workspaceId: string } }>(
      '/workspaces/:workspaceId/events',
      { config: { audit: false }, onRequest: workspaceAccess('events:ingest', 'events'), schema: { tags: ['ingest'], summary: 'Send events to a workspace' } },
      async (request, reply) => handle(request, reply, request.params.workspaceId),
    );
  };
}
