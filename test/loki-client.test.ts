import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { pinoLoki } from 'pino-loki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from './helpers/app.js';

describe('a Loki push client nobody here wrote (pino-loki)', () => {
  let t: TestApp;
  let owner: TestUser;
  let ws: { id: string };
  let key: string;

  beforeAll(async () => {
    t = await buildTestApp();
    owner = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner);
    key = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/apikeys`, headers: owner.headers, payload: { name: 'pino-loki', scopes: ['ingest'] } })).json().key;
    await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => t.close());

  it('ships its log lines, labels included, unchanged', async () => {
    const { port } = t.app.server.address() as AddressInfo;
    const transport = pinoLoki({ host: `http://127.0.0.1:${port}`, basicAuth: { username: 'pino', password: key }, batching: false, labels: { job: 'pino-app', env: 'test' } });
    const logger = pino({ level: 'info' }, transport);
    logger.info({ user: 'alice' }, 'pino says hello');
    logger.error('pino reports a failure');
    const deadline = Date.now() + 10_000;
    let events: Array<Record<string, unknown>> = [];
    while (Date.now() < deadline && events.length < 2) {
      await new Promise((r) => setTimeout(r, 200));
      events = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/search`, headers: owner.headers, payload: { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', query: 'labels.job:pino-app', sort: 'asc' } })).json().events;
    }
    expect(events).toHaveLength(2);
    expect(events.map((e) => e.msg).sort()).toEqual(['pino reports a failure', 'pino says hello']);
    expect(events.find((e) => e.msg === 'pino says hello')).toMatchObject({ 'labels.env': 'test', user: 'alice', 'event.source': 'loki' });
    transport.end();
  });
});
