import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { Client } from '@elastic/elasticsearch';
import snappy from 'snappyjs';
import { PushRequest } from '../src/modules/ingest/sources/loki.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from './helpers/app.js';

let t: TestApp;
let owner: TestUser;
let ws: { id: string };
let ingestKey: string;
let readKey: string;
const day = { from: '2026-11-01T00:00:00Z', to: '2026-12-01T00:00:00Z' };

beforeAll(async () => {
  t = await buildTestApp();
  owner = await buildUser(t.app);
  ws = await buildWorkspace(t.app, owner);
  const key = async (scopes: string[]) => (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/apikeys`, headers: owner.headers, payload: { name: scopes.join('+'), scopes } })).json().key as string;
  ingestKey = await key(['ingest']);
  readKey = await key(['read']);
});
afterAll(async () => t.close());

const search = async (query: string, extra: Record<string, unknown> = {}) =>
  (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/search`, headers: owner.headers, payload: { ...day, query, ...extra } })).json();

describe('HTTP ingestion', () => {
  it('stores a JSON array and rejects the one bad item alone', async () => {
    const res = await t.app.inject({
      method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify([
        { '@timestamp': '2026-11-20T10:00:00Z', message: 'Failed password for root from 203.0.113.9', 'event.action': 'ssh_login', 'event.outcome': 'failure', 'source.ip': '203.0.113.9', tag: 'batch-1' },
        'not an object',
        { '@timestamp': '2026-11-20T10:01:00Z', message: 'Accepted password for alice', 'user.name': 'alice', tag: 'batch-1' },
      ]),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ received: 3, stored: 2, rejected: 1, errors: [{ index: 1, reason: 'not_an_object', message: expect.any(String) }] });
    expect((await search('tag:batch-1')).events).toHaveLength(2);
    const [hit] = (await search('source.ip:203.0.113.0/24')).events;
    expect(hit).toMatchObject({ timestamp: '2026-11-20T10:00:00.000Z', 'event.action': 'ssh_login', 'event.source': 'http', tag: 'batch-1' });
  });

  it('takes gzip-compressed NDJSON and rejects a malformed line alone', async () => {
    const lines = [JSON.stringify({ msg: 'first line', tag: 'ndjson', '@timestamp': '2026-11-20T11:00:00Z' }), '{"broken": ', JSON.stringify({ msg: 'third line', tag: 'ndjson', '@timestamp': '2026-11-20T11:00:01Z' })];
    const res = await t.app.inject({
      method: 'POST', url: `/api/v1/workspaces/${ws.id}/events`,
      headers: { 'x-api-key': ingestKey, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' },
      payload: gzipSync(lines.join('\n')),
    });
    expect(res.json()).toMatchObject({ received: 3, stored: 2, rejected: 1, errors: [{ index: 1, reason: 'invalid_json' }] });
    expect((await search('tag:ndjson', { sort: 'asc' })).events.map((e: { message: string }) => e.message)).toEqual(['first line', 'third line']);
  });

  it('rejects an event over 1 MiB alone', async () => {
    const big = JSON.stringify({ tag: 'big', blob: 'x'.repeat(1024 * 1024 + 10) });
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/x-ndjson' }, payload: `${big}\n${JSON.stringify({ tag: 'small-after-big' })}\n` });
    expect(res.json()).toMatchObject({ received: 2, stored: 1, rejected: 1, errors: [{ index: 0, reason: 'too_large' }] });
  });

  it('refuses a gzip bomb by its decompressed size', async () => {
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024, 32));
    expect(bomb.length).toBeLessThan(100_000);
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: bomb });
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('SIQ_PAYLOAD_TOO_LARGE');
  });

  it('refuses a body that is not JSON at all, and keys without the ingest scope', async () => {
    const bad = await t.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json' }, payload: '{nope' });
    expect(bad.json().error.code).toBe('SIQ_BAD_REQUEST');
    const scoped = await t.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${readKey}` }, payload: '[]' });
    expect(scoped.json().error.code).toBe('SIQ_API_KEY_SCOPE');
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/events', payload: '[]' })).json().error.code).toBe('SIQ_UNAUTHENTICATED');
  });

  it('marks events without a timestamp and reads zone-less Windows times as UTC', async () => {
    await t.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${ingestKey}` }, payload: [{ note: 'no-time', msg: 'x' }, { note: 'win-time', TimeCreated: '2026-11-20 12:28:44.333', EventID: 4625, Channel: 'Security', Hostname: 'WS5', TargetUserName: 'admin', IpAddress: '10.9.9.9' }] });
    const [noTime] = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/search`, headers: owner.headers, payload: { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', query: 'note:no-time' } })).json().events;
    expect(noTime['event.timestamp_source']).toBe('received');
    const [win] = (await search('note:win-time')).events;
    expect(win).toMatchObject({ timestamp: '2026-11-20T12:28:44.333Z', 'event.action': 'logon-failed', 'event.outcome': 'failure', 'host.name': 'WS5', 'user.name': 'admin', 'source.ip': '10.9.9.9', EventID: 4625 });
  });

  it('stores the message once and gives documents back whole', async () => {
    const windowsMessage = 'An account failed to log on.\r\n\tAccount Name:\t\tadmin \\ "quoted"';
    const res = await t.app.inject({
      method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${ingestKey}` },
      payload: [
        { '@timestamp': '2026-11-20T12:00:00Z', note: 'stored-doc', Message: windowsMessage, EventID: 4625, Channel: 'Security' },
        { '@timestamp': '2026-11-20T12:00:01Z', note: 'stored-doc', message: 'own message field' },
        { '@timestamp': '2026-11-20T12:00:02Z', note: 'stored-doc', message: 42 },
        { '@timestamp': '2026-11-20T12:00:03Z', note: 'stored-doc', other: 'no message at all' },
      ],
    });
    expect(res.json()).toMatchObject({ stored: 4 });
    // In the table: `message` is left out of doc wherever it equals the column…
    const { rows } = await t.app.platform.db.query<{ message: string | null; doc: Record<string, unknown> }>(
      "SELECT message, doc FROM events WHERE workspace_id = $1 AND doc ->> 'note' = 'stored-doc' ORDER BY ts", [ws.id]);
    expect(rows.map((r) => [r.message, 'message' in r.doc, r.doc.message])).toEqual([[windowsMessage, false, undefined], ['own message field', false, undefined], ['42', true, 42], [null, false, undefined]]);
    expect(rows[0]!.doc.Message).toBe(windowsMessage);
    // …and every reader gets it back.
    const events = (await search('note:stored-doc', { sort: 'asc' })).events as Array<Record<string, unknown>>;
    expect(events.map((e) => e.message)).toEqual([windowsMessage, 'own message field', 42, undefined]);
    expect((await search('message:"own message"')).events).toHaveLength(1);
  });
});

describe('Elasticsearch-compatible API', () => {
  it('answers the probes and _bulk with per-item status', async () => {
    const auth = { authorization: `Basic ${Buffer.from(`filebeat:${ingestKey}`).toString('base64')}` };
    const root = await t.app.inject({ method: 'GET', url: '/', headers: auth });
    expect(root.json().version.number).toMatch(/^8\./);
    expect(root.headers['x-elastic-product']).toBe('Elasticsearch');
    expect((await t.app.inject({ method: 'GET', url: '/_cluster/health', headers: auth })).json().status).toBe('green');
    const body = [
      JSON.stringify({ index: { _index: 'filebeat-8' } }), JSON.stringify({ '@timestamp': '2026-11-20T13:00:00Z', message: 'bulk one', tag: 'bulk' }),
      JSON.stringify({ create: {} }), '{bad json',
      JSON.stringify({ delete: { _id: 'x' } }),
      JSON.stringify({ create: { _id: 'given-id' } }), JSON.stringify({ '@timestamp': '2026-11-20T13:00:01Z', message: 'bulk two', tag: 'bulk' }),
    ].join('\n') + '\n';
    const res = await t.app.inject({ method: 'POST', url: '/logs-app/_bulk', headers: { ...auth, 'content-type': 'application/x-ndjson' }, payload: body });
    expect(res.statusCode).toBe(200);
    const out = res.json();
    expect(out.errors).toBe(true);
    expect(out.items.map((i: Record<string, { status: number }>) => Object.values(i)[0]!.status)).toEqual([201, 400, 400, 201]);
    expect(out.items[1].create.error.type).toBe('mapper_parsing_exception');
    expect(out.items[3].create._id).toBe('given-id');
    expect((await search('tag:bulk')).events.map((e: { 'data_stream.index': string }) => e['data_stream.index']).sort()).toEqual(['filebeat-8', 'logs-app']);
  });

  it('takes events from the official Elasticsearch client\'s bulk helper unchanged', async () => {
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = t.app.server.address() as AddressInfo;
    const client = new Client({ node: `http://127.0.0.1:${port}`, auth: { username: 'elastic', password: ingestKey } });
    const docs = Array.from({ length: 500 }, (_, i) => ({ '@timestamp': new Date(Date.UTC(2026, 10, 21, 0, 0, i)).toISOString(), message: `helper event ${i}`, tag: 'es-helper', seq: i }));
    const result = await client.helpers.bulk({ datasource: docs, onDocument: () => ({ index: { _index: 'helper-test' } }), flushBytes: 20_000 });
    expect(result).toMatchObject({ total: 500, successful: 500, failed: 0 });
    const count = await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/count`, headers: owner.headers, payload: { ...day, query: 'tag:es-helper' } });
    expect(count.json().count).toBe(500);
    await client.close();
  });
});

describe('Loki push API', () => {
  it('stores lines with their stream labels as fields', async () => {
    const ns = (ms: number) => `${ms}000000`;
    const res = await t.app.inject({
      method: 'POST', url: '/loki/api/v1/push', headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json' },
      payload: { streams: [{ stream: { job: 'nginx', host: 'edge-1', env: 'prod' }, values: [[ns(Date.UTC(2026, 10, 20, 14)), 'GET /login 401'], [ns(Date.UTC(2026, 10, 20, 14, 0, 1)), '{"status":500,"msg":"upstream died"}']] }] },
    });
    expect(res.statusCode).toBe(204);
    const events = (await search('labels.job:nginx', { sort: 'asc' })).events;
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ timestamp: '2026-11-20T14:00:00.000Z', message: 'GET /login 401', 'host.name': 'edge-1', 'labels.env': 'prod', 'event.source': 'loki' });
    expect(events[1]).toMatchObject({ status: 500, message: 'upstream died' });
    const bad = await t.app.inject({ method: 'POST', url: '/loki/api/v1/push', headers: { authorization: `Bearer ${ingestKey}` }, payload: { streams: [{ stream: {}, values: [['not-a-time', 'x'], [ns(Date.UTC(2026, 10, 20, 15)), 'kept']] }] } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details[0]).toMatchObject({ reason: 'invalid_timestamp' });
    expect((await search('kept')).events).toHaveLength(1);
  });
});

describe('Loki protobuf push', () => {
  it('decodes snappy-compressed protobuf PushRequests, as Promtail sends them', async () => {
    const message = PushRequest.fromObject({
      streams: [{
        labels: '{job="varlogs", host="pt-1", filename="/var/log/auth.log", quoted="a \\"b\\""}',
        entries: [
          { timestamp: { seconds: Math.floor(Date.UTC(2026, 10, 20, 16) / 1000), nanos: 500_000_000 }, line: 'proto line one', structuredMetadata: [{ name: 'trace_id', value: 'abc123' }] },
          { timestamp: { seconds: Math.floor(Date.UTC(2026, 10, 20, 16, 0, 1) / 1000), nanos: 0 }, line: 'proto line two' },
        ],
      }],
    });
    const body = Buffer.from(snappy.compress(PushRequest.encode(message).finish()));
    const res = await t.app.inject({ method: 'POST', url: '/loki/api/v1/push', headers: { authorization: `Basic ${Buffer.from(`promtail:${ingestKey}`).toString('base64')}`, 'content-type': 'application/x-protobuf' }, payload: body });
    expect(res.statusCode).toBe(204);
    const events = (await search('labels.job:varlogs', { sort: 'asc' })).events;
    expect(events.map((e: { message: string }) => e.message)).toEqual(['proto line one', 'proto line two']);
    expect(events[0]).toMatchObject({ timestamp: '2026-11-20T16:00:00.500Z', 'host.name': 'pt-1', 'labels.filename': '/var/log/auth.log', 'labels.quoted': 'a "b"', 'labels.trace_id': 'abc123' });
    const garbage = await t.app.inject({ method: 'POST', url: '/loki/api/v1/push', headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/x-protobuf' }, payload: Buffer.from('not snappy at all') });
    expect(garbage.json().error.code).toBe('SIQ_BAD_REQUEST');
  });
});

describe('search API', () => {
  it('pages with searchAfter, counts, histograms and top terms', async () => {
    const events = Array.from({ length: 30 }, (_, i) => ({ '@timestamp': new Date(Date.UTC(2026, 10, 22, 10, i)).toISOString(), 'host.name': `h${i % 3}`, 'event.action': 'page-test', n: i }));
    await t.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${ingestKey}` }, payload: events });
    const seen: number[] = [];
    let after: unknown = undefined;
    for (let page = 0; page < 10; page++) {
      const res = await search('event.action:page-test', { size: 7, ...(after ? { searchAfter: after } : {}) });
      seen.push(...res.events.map((e: { n: number }) => e.n));
      after = res.nextSearchAfter;
      if (!after) break;
    }
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => 29 - i));
    const fields = (await search('event.action:page-test', { size: 1, fields: ['host.name'] })).events[0];
    expect(Object.keys(fields).sort()).toEqual(['host.name', 'id', 'timestamp']);

    const range = { from: '2026-11-22T10:00:00Z', to: '2026-11-22T10:30:00Z', query: 'event.action:page-test' };
    const hist = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/histogram`, headers: owner.headers, payload: { ...range, maxBuckets: 6 } })).json();
    expect(hist.interval).toBe('5 minutes');
    expect(hist.buckets.map((b: { count: number }) => b.count)).toEqual([5, 5, 5, 5, 5, 5]);
    const terms = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/terms`, headers: owner.headers, payload: { ...range, field: 'host.name', size: 2 } })).json();
    expect(terms.terms).toEqual([{ value: 'h0', count: 10 }, { value: 'h1', count: 10 }]);
    const docTerms = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/terms`, headers: owner.headers, payload: { ...range, field: 'n', size: 1 } })).json();
    expect(docTerms.terms).toHaveLength(1);
  });

  it('answers a syntax error with its position', async () => {
    const res = await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/search`, headers: owner.headers, payload: { ...day, query: 'user.name:(alice OR' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'SIQ_QUERY_SYNTAX', details: { position: 19 } });
  });

  it('reports per-source counters that add up', async () => {
    const stats = (await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/ingest/stats`, headers: owner.headers })).json();
    for (const source of ['http', 'elasticsearch', 'loki']) {
      const c = stats.sources[source];
      expect(c.received).toBeGreaterThan(0);
      expect(c.received).toBe(c.stored + c.rejected + c.dropped);
    }
    expect(stats.sources.http.rejectedByReason).toMatchObject({ not_an_object: 1, invalid_json: 1 });
    // Stored is what the store holds, since it is counted in the transaction that stores.
    const inStore = await t.app.platform.db.query<{ source: string; n: number }>('SELECT source, count(*)::int AS n FROM events WHERE workspace_id = $1 GROUP BY source', [ws.id]);
    for (const { source, n } of inStore.rows) expect(stats.sources[source].stored).toBe(n);
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(new RegExp(`siq_ingest_events_total\\{source="http",workspace="${ws.id}",outcome="stored"\\} \\d+`));
  });
});

describe('backpressure', () => {
  it('answers 503 with Retry-After when the queue is full, and stores nothing of that request', async () => {
    const small = await buildTestApp({ INGEST_QUEUE_EVENTS: '100' });
    try {
      const user = await buildUser(small.app);
      const w = await buildWorkspace(small.app, user);
      const key = (await small.app.inject({ method: 'POST', url: `/api/v1/workspaces/${w.id}/apikeys`, headers: user.headers, payload: { name: 'k', scopes: ['ingest'] } })).json().key;
      const res = await small.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${key}` }, payload: Array.from({ length: 150 }, (_, i) => ({ i })) });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.code).toBe('SIQ_INGEST_BUSY');
      expect(res.headers['retry-after']).toBe('1');
      const ok = await small.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${key}` }, payload: Array.from({ length: 50 }, (_, i) => ({ i })) });
      expect(ok.json().stored).toBe(50);
    } finally {
      await small.close();
    }
  });
});
