import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSiqError } from '../src/errors.js';
import { archiveKey, readManifest, restoreArchive, runRetention, verifyArchive } from '../src/modules/events/retention.js';
import { buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from './helpers/app.js';

const DAY = 86_400_000;
const now = new Date();
const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const oldDay = dayOf(now.getTime() - 40 * DAY);
const recentDay = dayOf(now.getTime() - 5 * DAY);

let t: TestApp;
let owner: TestUser;
let a: { id: string };
let b: { id: string };

async function send(workspaceId: string, day: string, tag: string, count: number) {
  const key = (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${workspaceId}/apikeys`, headers: owner.headers, payload: { name: `k-${tag}`, scopes: ['ingest'] } })).json().key;
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${key}` }, payload: Array.from({ length: count }, (_, i) => ({ '@timestamp': `${day}T12:00:0${i}Z`, tag, i, message: `event ${tag} ${i}` })) });
  expect(res.json().stored).toBe(count);
}

async function count(workspaceId: string, query: string): Promise<number> {
  const res = await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${workspaceId}/events/count`, headers: owner.headers, payload: { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', query } });
  return res.json().count;
}

beforeAll(async () => {
  t = await buildTestApp();
  owner = await buildUser(t.app);
  a = await buildWorkspace(t.app, owner, 'short retention');
  b = await buildWorkspace(t.app, owner, 'long retention');
  await send(a.id, oldDay, 'a-old', 3);
  await send(a.id, recentDay, 'a-recent', 2);
  await send(b.id, oldDay, 'b-old', 2);
  const put = await t.app.inject({ method: 'PUT', url: `/api/v1/workspaces/${b.id}/events/retention`, headers: owner.headers, payload: { days: 90 } });
  expect(put.json()).toEqual({ days: 90, default: false });
});
afterAll(async () => t.close());

describe('retention and the cold archive', () => {
  it('archives and removes days past each workspace\'s retention, and keeps the rest', async () => {
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${a.id}/events/retention`, headers: owner.headers })).json()).toEqual({ days: 30, default: true });
    const report = await runRetention(t.app.platform, now);
    expect(report.archived).toEqual([{ workspaceId: a.id, day: oldDay, events: 3 }]);
    expect(report.droppedPartitions).toEqual([]); // workspace B still has rows that day
    expect(await count(a.id, 'tag:a-old')).toBe(0);
    expect(await count(a.id, 'tag:a-recent')).toBe(2);
    expect(await count(b.id, 'tag:b-old')).toBe(2);
  });

  it('writes a manifest whose checksum matches the archived bytes', async () => {
    const manifest = (await readManifest(t.app.platform, a.id, oldDay))!;
    expect(manifest).toMatchObject({ format: 'siq-events-ndjson-gzip/1', workspaceId: a.id, day: oldDay, events: 3 });
    const chunks: Buffer[] = [];
    for await (const chunk of (await t.app.platform.objects.get('archives', archiveKey(a.id, oldDay))).body) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(manifest.sha256);
    expect(bytes.length).toBe(manifest.bytes);
    await expect(verifyArchive(t.app.platform, a.id, oldDay)).resolves.toMatchObject({ events: 3 });
  });

  it('brings a day back with restore, once', async () => {
    expect(await restoreArchive(t.app.platform, a.id, oldDay)).toEqual({ restored: 3, skipped: 0 });
    expect(await count(a.id, 'tag:a-old')).toBe(3);
    expect(await restoreArchive(t.app.platform, a.id, oldDay)).toEqual({ restored: 0, skipped: 3 });
    expect(await count(a.id, 'tag:a-old')).toBe(3);
  });

  it('refuses to restore an archive that was altered', async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of (await t.app.platform.objects.get('archives', archiveKey(a.id, oldDay))).body) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0xff;
    await t.app.platform.objects.put('archives', archiveKey(a.id, oldDay), bytes);
    const err = await restoreArchive(t.app.platform, a.id, oldDay).catch((e: unknown) => e);
    expect(isSiqError(err, 'SIQ_ARCHIVE_CORRUPT')).toBe(true);
  });

  it('drops a day\'s partition once no workspace keeps events of that day', async () => {
    await t.app.inject({ method: 'PUT', url: `/api/v1/workspaces/${b.id}/events/retention`, headers: owner.headers, payload: { days: 10 } });
    // A's restored rows of that day are archived already (the altered archive is rewritten with them).
    const report = await runRetention(t.app.platform, now);
    expect(report.archived.map((x) => x.workspaceId).sort()).toEqual([a.id, b.id].sort());
    expect(report.droppedPartitions).toEqual([`events_p${oldDay.replace(/-/g, '')}`]);
    expect(await count(b.id, 'tag:b-old')).toBe(0);
    expect(await count(a.id, 'tag:a-recent')).toBe(2);
    // Late events for a dropped day still find a partition.
    await send(a.id, oldDay, 'a-late', 1);
    expect(await count(a.id, 'tag:a-late')).toBe(1);
  });
});

describe('disk budget', () => {
  it('archives and drops the oldest days first when the store is over EVENTS_MAX_BYTES, whatever their retention', async () => {
    const small = await buildTestApp({ EVENTS_MAX_BYTES: '1' });
    try {
      const user = await buildUser(small.app);
      const w = await buildWorkspace(small.app, user);
      const key = (await small.app.inject({ method: 'POST', url: `/api/v1/workspaces/${w.id}/apikeys`, headers: user.headers, payload: { name: 'k', scopes: ['ingest'] } })).json().key;
      const days = [dayOf(now.getTime() - 3 * DAY), dayOf(now.getTime() - 2 * DAY), dayOf(now.getTime())];
      for (const day of days) {
        await small.app.inject({ method: 'POST', url: '/api/v1/events', headers: { authorization: `Bearer ${key}` }, payload: [{ '@timestamp': `${day}T00:00:01Z`, day }] });
      }
      const report = await runRetention(small.app.platform, now);
      // Both past days go (a budget of 1 byte is never met); today's partition is never touched.
      expect(report.archived.map((a) => a.day)).toEqual(days.slice(0, 2));
      expect(report.droppedPartitions).toEqual(days.slice(0, 2).map((d) => `events_p${d.replace(/-/g, '')}`));
      const left = await small.app.inject({ method: 'POST', url: `/api/v1/workspaces/${w.id}/events/count`, headers: user.headers, payload: { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', query: '_exists_:day' } });
      // (The platform's own security events, such as the API key's creation, are events too.)
      expect(left.json().count).toBe(1);
      expect(await readManifest(small.app.platform, w.id, days[0]!)).toMatchObject({ events: 1 });
    } finally {
      await small.close();
    }
  }, 120_000);
});
