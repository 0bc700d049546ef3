import type { FastifyInstance } from 'fastify';
import { SiqError } from '../../../errors.js';
import type { IngestPipeline, RawItem } from '../pipeline.js';
import { registerDecompression, retryLater } from './http.js';
import { authenticateShipper } from './shipper-auth.js';

interface LokiPushBody {
  streams?: Array<{ stream?: Record<string, string>; values?: Array<[string, string, Record<string, string>?]> }>;
}

/**
 * Loki's push body → one item per log line. Stream labels become fields (`labels.<name>`, and
 * the usual ones also their ECS names); a line that is itself JSON is parsed, otherwise it is
 * the message. The nanosecond timestamp becomes `@timestamp`.
 */
export function lokiItems(body: LokiPushBody): RawItem[] {
  if (!body || !Array.isArray(body.streams)) throw new SiqError('SIQ_BAD_REQUEST', 'A Loki push body has a "streams" array.');
  const items: RawItem[] = [];
  for (const stream of body.streams) {
    const labels: Record<string, string> = stream?.stream ?? {};
    const extra: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(labels)) extra[`labels.${name}`] = value;
    if (labels.host ?? labels.hostname) extra['host.name'] = labels.host ?? labels.hostname;
    if (labels.job) extra['service.name'] = labels.job;
    for (const entry of stream?.values ?? []) {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'string') {
        items.push({ error: 'invalid_entry', message: 'each value is [timestamp-in-ns as a string, line]' });
        continue;
      }
      const [ns, line, metadata] = entry;
      if (!/^\d{1,19}$/.test(ns)) {
        items.push({ error: 'invalid_timestamp', message: `timestamp ${JSON.stringify(ns.slice(0, 40))} is not nanoseconds since the epoch` });
        continue;
      }
      const timestamp = new Date(Number(BigInt(ns) / 1_000_000n)).toISOString();
      let value: Record<string, unknown> = { message: line };
      if (line.startsWith('{')) {
        try {
          const parsed = JSON.parse(line) as unknown;
          if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) value = parsed as Record<string, unknown>;
        } catch {
          // not JSON after all: keep the line as the message
        }
      }
      const meta: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(metadata ?? {})) meta[`labels.${k}`] = v;
      items.push({ value: { '@timestamp': timestamp, ...value }, extra: { ...extra, ...meta } });
    }
  }
  return items;
}

/** `POST /loki/api/v1/push` (JSON; gzip accepted) so Promtail and Grafana Alloy can ship unchanged. */
export function lokiSource(pipeline: IngestPipeline) {
  return async function routes(app: FastifyInstance): Promise<void> {
    registerDecompression(app);
    app.post('/loki/api/v1/push', { config: { audit: false }, schema: { tags: ['ingest'], summary: 'Loki push API (JSON)' } }, async (request, reply) => {
      const workspaceId = await authenticateShipper(request, reply);
      const type = String(request.headers['content-type'] ?? '');
      if (type.includes('protobuf')) throw new SiqError('SIQ_UNSUPPORTED_MEDIA_TYPE', 'Protobuf pushes are not supported yet: configure the client to send JSON (Promtail: not possible; Alloy: loki.write with JSON), or use the Elasticsearch _bulk API.');
      const results = await pipeline.ingest(workspaceId, 'loki', lokiItems(request.body as LokiPushBody)).catch((err: unknown) => retryLater(reply, err));
      const rejected = results.filter((r) => r.status === 'rejected');
      // Loki answers 204 on success; partial failures are 400 with the reasons, as Loki does.
      if (rejected.length > 0) return reply.status(400).send({ error: { code: 'SIQ_EVENT_INVALID', message: `${rejected.length} of ${results.length} entries were rejected; the others were stored.`, requestId: request.id, details: rejected.slice(0, 20) } });
      return reply.status(204).send();
    });
  };
}
