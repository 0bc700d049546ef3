import type { FastifyInstance } from 'fastify';
import protobuf from 'protobufjs';
import snappy from 'snappyjs';
import { SiqError } from '../../../errors.js';
import type { IngestPipeline, RawItem } from '../pipeline.js';
import { registerDecompression, retryLater } from './http.js';
import { authenticateShipper } from './shipper-auth.js';

interface LokiPushBody {
  streams?: Array<{ stream?: Record<string, string>; values?: Array<[string, string, Record<string, string>?]> }>;
}

// Loki's push protocol (pkg/push/push.proto), as a runtime schema: no generated code to keep.
const proto = protobuf.Root.fromJSON({
  nested: {
    logproto: {
      nested: {
        PushRequest: { fields: { streams: { rule: 'repeated', type: 'StreamAdapter', id: 1 } } },
        StreamAdapter: { fields: { labels: { type: 'string', id: 1 }, entries: { rule: 'repeated', type: 'EntryAdapter', id: 2 }, hash: { type: 'uint64', id: 3 } } },
        EntryAdapter: { fields: { timestamp: { type: 'Timestamp', id: 1 }, line: { type: 'string', id: 2 }, structuredMetadata: { rule: 'repeated', type: 'LabelPairAdapter', id: 3 } } },
        LabelPairAdapter: { fields: { name: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        Timestamp: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
      },
    },
  },
});
export const PushRequest = proto.lookupType('logproto.PushRequest');

/** Parses Prometheus-style label sets: `{job="nginx", host="edge-1"}`. */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const pair = /([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
  let m: RegExpExecArray | null;
  while ((m = pair.exec(text))) out[m[1]!] = m[2]!.replace(/\\(["\\])/g, '$1').replace(/\\n/g, '\n');
  return out;
}

/** A snappy-compressed protobuf PushRequest (what Promtail and Alloy send) → the JSON body shape. */
export function decodeProtobufPush(body: Buffer): LokiPushBody {
  let raw: Uint8Array;
  try {
    raw = snappy.uncompress(new Uint8Array(body.buffer, body.byteOffset, body.length), 64 * 1024 * 1024);
  } catch (err) {
    throw new SiqError('SIQ_BAD_REQUEST', `The push body is not snappy-compressed: ${(err as Error).message}`);
  }
  let message: { streams?: Array<{ labels?: string; entries?: Array<{ timestamp?: { seconds?: number | { toString(): string }; nanos?: number }; line?: string; structuredMetadata?: Array<{ name: string; value: string }> }> }> };
  try {
    message = PushRequest.toObject(PushRequest.decode(raw), { longs: String }) as typeof message;
  } catch (err) {
    throw new SiqError('SIQ_BAD_REQUEST', `The push body is not a Loki PushRequest: ${(err as Error).message}`);
  }
  return {
    streams: (message.streams ?? []).map((stream) => ({
      stream: parseLabels(stream.labels ?? ''),
      values: (stream.entries ?? []).map((e) => {
        const seconds = BigInt(String(e.timestamp?.seconds ?? 0));
        const ns = (seconds * 1_000_000_000n + BigInt(e.timestamp?.nanos ?? 0)).toString();
        const metadata = Object.fromEntries((e.structuredMetadata ?? []).map((p) => [p.name, p.value]));
        return [ns, e.line ?? '', metadata] as [string, string, Record<string, string>];
      }),
    })),
  };
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

/** `POST /loki/api/v1/push`: protobuf+snappy (Promtail, Alloy) or JSON (gzip accepted), so Loki clients ship unchanged. */
export function lokiSource(pipeline: IngestPipeline) {
  return async function routes(app: FastifyInstance): Promise<void> {
    registerDecompression(app);
    app.addContentTypeParser(['application/x-protobuf', 'application/protobuf'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    app.post('/loki/api/v1/push', { config: { audit: false }, schema: { tags: ['ingest'], summary: 'Loki push API (JSON)' } }, async (request, reply) => {
      const workspaceId = await authenticateShipper(request, reply);
      const body = Buffer.isBuffer(request.body) ? decodeProtobufPush(request.body) : (request.body as LokiPushBody);
      const results = await pipeline.ingest(workspaceId, 'loki', lokiItems(body)).catch((err: unknown) => retryLater(reply, err));
      const rejected = results.filter((r) => r.status === 'rejected');
      // Loki answers 204 on success; partial failures are 400 with the reasons, as Loki does.
      if (rejected.length > 0) return reply.status(400).send({ error: { code: 'SIQ_EVENT_INVALID', message: `${rejected.length} of ${results.length} entries were rejected; the others were stored.`, requestId: request.id, details: rejected.slice(0, 20) } });
      return reply.status(204).send();
    });
  };
}
