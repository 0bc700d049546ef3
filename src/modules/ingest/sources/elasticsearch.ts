import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SiqError } from '../../../errors.js';
import { MAX_EVENT_BYTES } from '../normalize.js';
import type { IngestPipeline, RawItem } from '../pipeline.js';
import { registerDecompression, retryLater } from './http.js';
import { authenticateShipper } from './shipper-auth.js';

// The version shippers see. Filebeat, Logstash, Fluent Bit, Vector and the official clients
// read it to choose their request format; 8.x is what current ones expect.
const ES_VERSION = '8.15.0';

interface BulkAction {
  op: string;
  index: string;
  id?: string;
}

export interface BulkParse {
  actions: BulkAction[];
  /** One per action: the document, or why that action cannot be taken. */
  items: RawItem[];
}

/**
 * Parses an Elasticsearch `_bulk` body: an action line (`index` or `create`), then the document.
 * `delete` and `update` are answered per item as unsupported (events are immutable here); a
 * malformed line fails its own item only.
 */
export function parseBulk(text: string, defaultIndex: string | undefined): BulkParse {
  const lines = text.split('\n');
  const actions: BulkAction[] = [];
  const items: RawItem[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    let header: Record<string, { _index?: string; _id?: string }>;
    try {
      header = JSON.parse(line) as typeof header;
    } catch {
      actions.push({ op: 'index', index: defaultIndex ?? 'unknown' });
      items.push({ error: 'parse_exception', message: `malformed action line ${i + 1}` });
      continue;
    }
    const op = Object.keys(header ?? {})[0] ?? 'unknown';
    const meta = header?.[op] ?? {};
    const action: BulkAction = { op, index: meta._index ?? defaultIndex ?? 'events', id: meta._id };
    actions.push(action);
    if (op === 'delete') {
      items.push({ error: 'action_not_supported', message: 'events are immutable: delete is not supported' });
      continue;
    }
    const source = lines[++i]?.trim();
    if (op !== 'index' && op !== 'create') {
      items.push({ error: 'action_not_supported', message: `the "${op}" action is not supported; use index or create` });
      continue;
    }
    if (!source) {
      items.push({ error: 'parse_exception', message: 'the action has no document line' });
      continue;
    }
    if (source.length > MAX_EVENT_BYTES) {
      items.push({ error: 'too_large', message: `the document is larger than ${MAX_EVENT_BYTES} bytes` });
      continue;
    }
    try {
      items.push({ value: JSON.parse(source), extra: { 'data_stream.index': action.index } });
    } catch (err) {
      items.push({ error: 'mapper_parsing_exception', message: `failed to parse the document: ${(err as Error).message}` });
    }
  }
  return { actions, items };
}

/**
 * The part of the Elasticsearch API that shippers use, so Filebeat, Logstash, Fluent Bit,
 * Vector and the official clients can send here unchanged: `_bulk` (with per-item status and
 * errors), and the probes they make first (`GET /` and its `HEAD`, `_cluster/health`, `_license`, `_xpack`).
 * Every answer carries `X-Elastic-Product: Elasticsearch`, which current clients check.
 */
export function elasticsearchSource(pipeline: IngestPipeline) {
  return async function routes(app: FastifyInstance): Promise<void> {
    registerDecompression(app);
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
    app.addHook('onSend', async (_request, reply, payload) => {
      reply.header('x-elastic-product', 'Elasticsearch');
      return payload;
    });

    const info = async (request: FastifyRequest, reply: FastifyReply) => {
      await authenticateShipper(request, reply);
      return { name: 'sentineliq', cluster_name: 'sentineliq', cluster_uuid: 'sentineliq', version: { number: ES_VERSION, build_flavor: 'default', build_type: 'docker', lucene_version: '9.11.1', minimum_wire_compatibility_version: '7.17.0', minimum_index_compatibility_version: '7.0.0' }, tagline: 'You Know, for Search' };
    };
    const hidden = { schema: { hide: true }, config: { audit: false as const } };
    app.get('/', hidden, info);
    app.get('/_cluster/health', hidden, async (request, reply) => {
      await authenticateShipper(request, reply);
      return { cluster_name: 'sentineliq', status: 'green', timed_out: false, number_of_nodes: 1, number_of_data_nodes: 1, active_primary_shards: 1, active_shards: 1, relocating_shards: 0, initializing_shards: 0, unassigned_shards: 0 };
    });
    app.get('/_license', hidden, async (request, reply) => {
      await authenticateShipper(request, reply);
      return { license: { status: 'active', type: 'basic', uid: 'sentineliq' } };
    });
    app.get('/_xpack', hidden, async (request, reply) => {
      await authenticateShipper(request, reply);
      return { build: {}, license: { status: 'active', type: 'basic' }, features: {} };
    });

    const bulk = async (request: FastifyRequest<{ Params: { index?: string } }>, reply: FastifyReply) => {
      const started = performance.now();
      const workspaceId = await authenticateShipper(request, reply);
      const { actions, items } = parseBulk(String(request.body ?? ''), request.params.index);
      if (items.length === 0) throw new SiqError('SIQ_BAD_REQUEST', 'The bulk request is empty.');
      const results = await pipeline.ingest(workspaceId, 'elasticsearch', items).catch((err: unknown) => {
        if (err instanceof SiqError && err.code === 'SIQ_INGEST_BUSY') {
          // 429 is what Elasticsearch answers under pressure; every shipper retries it.
          reply.header('retry-after', '1');
          throw new SiqError('SIQ_RATE_LIMITED', 'The ingest queue is full; retry the bulk request.', { details: { reason: 'es_rejected_execution_exception' } });
        }
        return retryLater(reply, err);
      });
      const out = results.map((r, k) => {
        const a = actions[k]!;
        const op = a.op === 'create' ? 'create' : a.op === 'index' ? 'index' : a.op;
        if (r.status === 'stored') return { [op]: { _index: a.index, _id: a.id ?? randomUUID(), _version: 1, result: 'created', status: 201, _shards: { total: 1, successful: 1, failed: 0 }, _seq_no: 0, _primary_term: 1 } };
        return { [op]: { _index: a.index, _id: a.id ?? null, status: r.reason === 'action_not_supported' ? 400 : 400, error: { type: r.reason, reason: r.message } } };
      });
      return { took: Math.round(performance.now() - started), errors: results.some((r) => r.status !== 'stored'), items: out };
    };
    app.post('/_bulk', hidden, bulk);
    app.put('/_bulk', hidden, bulk);
    app.post('/:index/_bulk', hidden, bulk);
    app.put('/:index/_bulk', hidden, bulk);
  };
}
