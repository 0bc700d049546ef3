import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import type { ObjectStore } from '../../src/platform/objects/types.js';
import { buildUser, buildWorkspace, type TestApp, type TestUser } from './app.js';

// Fixtures shared by the backup tests and the disaster-recovery test: a populated workspace, and
// the figures (rows per table, hashes of stored files) that must be the same after a restore.

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** SHA-256 of every object in the files bucket, by key. */
export async function fileHashes(objects: ObjectStore): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const info of objects.list('files')) out[info.key] = sha256(await readAll((await objects.get('files', info.key)).body));
  return out;
}

const TABLES = ['users', 'workspaces', 'workspace_members', 'events', 'alerts', 'alert_history', 'incidents', 'evidence', 'uploads', 'audit_logs', 'schema_migrations'];

/** Rows per table of the tables a restore must bring back. */
export async function counts(app: TestApp['app']): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of TABLES) out[table] = (await app.platform.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
  return out;
}

export function multipart(file: { name: string; data: Buffer }, fields: Record<string, string>): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----siq${randomBytes(8).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.name}"\r\nContent-Type: application/octet-stream\r\n\r\n`), file.data, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { payload: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** Users, events, an alert, an incident with evidence — through the platform's own services and routes. */
export async function populate(t: TestApp): Promise<{ admin: TestUser; analyst: TestUser; ws: { id: string } }> {
  const admin = await buildUser(t.app);
  await t.app.platform.db.query('UPDATE users SET is_platform_admin = true WHERE id = $1', [admin.id]);
  const analyst = await buildUser(t.app);
  const ws = await buildWorkspace(t.app, admin, 'Backup SOC');
  const now = new Date().toISOString();
  const results = await t.app.ingest.ingest(ws.id, 'test', Array.from({ length: 25 }, (_, i) => ({ value: { '@timestamp': now, message: `sign-in failed for user${i}; quote ' and tab\t`, 'host.name': 'ws-01' } })));
  expect(results.every((r) => r.status === 'stored')).toBe(true);
  await t.app.alerts.raise({ workspaceId: ws.id, ruleId: 'test:brute-force', ruleTitle: 'Brute force', ruleKind: 'threshold', severity: 'high', groupKey: 'ws-01', events: [], at: new Date() });
  const incident = await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/incidents`, headers: admin.headers, payload: { title: 'Ransomware on WS-01', severity: 'critical' } });
  expect(incident.statusCode).toBe(201);
  const body = multipart({ name: 'memory.dmp', data: randomBytes(200_000) }, { description: 'RAM capture' });
  const evidence = await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/incidents/${incident.json().id}/evidence`, headers: { ...admin.headers, ...body.headers }, payload: body.payload });
  expect(evidence.statusCode).toBe(201);
  await t.app.platform.objects.put('archives', 'events/test/2026-01-01.ndjson.gz', randomBytes(5000));
  return { admin, analyst, ws };
}
