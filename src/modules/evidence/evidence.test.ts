import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from '../../../test/helpers/app.js';
import { testDatabaseUrl } from '../../../test/helpers/services.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import { custodyHash, fieldsOf, GENESIS_HASH, type CustodyEntry } from './custody.js';

const run = promisify(execFile);

const implementations = [
  { name: 'pglite', enabled: true, postgres: false },
  { name: 'postgres', enabled: Boolean(testDatabaseUrl), postgres: true },
];

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A multipart/form-data body: fields first, then the file. */
function multipart(file: { name: string; data: Buffer; type?: string }, fields: Record<string, string> = {}): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----siq${randomBytes(8).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.name}"\r\nContent-Type: ${file.type ?? 'application/octet-stream'}\r\n\r\n`), file.data, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { payload: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

describe.each(implementations)('evidence on $name', ({ enabled, postgres }) => {
  let t: TestApp;
  let owner: TestUser;
  let admin: TestUser;
  let analyst: TestUser;
  let viewer: TestUser;
  let outsider: TestUser;
  let ws: { id: string };
  let other: { id: string };
  const url = (path: string, workspaceId = ws.id) => `/api/v1/workspaces/${workspaceId}${path}`;
  const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, user: TestUser, payload?: object, workspaceId?: string) =>
    t.app.inject({ method, url: url(path, workspaceId), headers: user.headers, ...(payload ? { payload } : {}) });

  async function newIncident(title = 'Ransomware on WS-01'): Promise<string> {
    const res = await call('POST', '/incidents', analyst, { title, severity: 'critical' });
    expect(res.statusCode).toBe(201);
    return res.json().id;
  }

  async function upload(incidentId: string, data: Buffer, name = 'memory.dmp', fields: Record<string, string> = { description: 'RAM capture of WS-01' }, user = analyst) {
    const body = multipart({ name, data }, fields);
    return t.app.inject({ method: 'POST', url: url(`/incidents/${incidentId}/evidence`), headers: { ...user.headers, ...body.headers }, payload: body.payload });
  }

  async function custody(incidentId: string, evidenceId: string): Promise<{ entries: CustodyEntry[]; chain: { ok: boolean; problems: string[] } }> {
    const res = await call('GET', `/incidents/${incidentId}/evidence/${evidenceId}/custody`, viewer);
    expect(res.statusCode).toBe(200);
    return res.json();
  }

  /** Flips one byte of the stored object behind the platform's back, straight through the object store. */
  async function tamper(uploadId: string, offset: number): Promise<void> {
    const { key } = await t.app.uploads.get(ws.id, uploadId);
    const { body } = await t.app.platform.objects.get('files', key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    bytes[offset] = bytes[offset]! ^ 0xff;
    await t.app.platform.objects.put('files', key, bytes);
  }

  beforeAll(async () => {
    if (!enabled) return;
    t = await buildTestApp({}, { postgres });
    owner = await buildUser(t.app);
    admin = await buildUser(t.app);
    analyst = await buildUser(t.app);
    viewer = await buildUser(t.app);
    outsider = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner, 'Evidence SOC');
    other = await buildWorkspace(t.app, outsider, 'Other SOC');
    await addMember(t.app, ws.id, owner, admin, 'admin');
    await addMember(t.app, ws.id, owner, analyst, 'analyst');
    await addMember(t.app, ws.id, owner, viewer, 'viewer');
  });
  afterAll(async () => {
    if (enabled) await t.close();
  });

  it.skipIf(!enabled)('stores evidence byte-for-byte with its SHA-256 and records upload, view and download on a hash-linked chain', async () => {
    const incidentId = await newIncident();
    const data = Buffer.concat([Buffer.from('MZ'), randomBytes(300_000)]);
    const res = await upload(incidentId, data, 'memory.dmp', { description: 'RAM capture of WS-01', sha256: sha256(data) });
    expect(res.statusCode, res.body).toBe(201);
    const item = res.json();
    expect(item).toMatchObject({ incidentId, filename: 'memory.dmp', size: data.length, sha256: sha256(data), description: 'RAM capture of WS-01', uploadedBy: analyst.id, deletedAt: null });

    const viewed = await call('GET', `/incidents/${incidentId}/evidence/${item.id}`, viewer);
    expect(viewed.statusCode).toBe(200);
    const downloaded = await call('GET', `/incidents/${incidentId}/evidence/${item.id}/download`, viewer);
    expect(downloaded.statusCode).toBe(200);
    expect(downloaded.headers['x-evidence-sha256']).toBe(sha256(data));
    expect(downloaded.rawPayload.equals(data)).toBe(true);

    const { entries, chain } = await custody(incidentId, item.id);
    expect(chain).toEqual({ ok: true, problems: [] });
    expect(entries.map((e) => [e.seq, e.action, e.actorUserId])).toEqual([[1, 'upload', analyst.id], [2, 'view', viewer.id], [3, 'download', viewer.id]]);
    expect(entries[0]!.details).toMatchObject({ sha256: sha256(data), size: data.length, clientSha256: sha256(data) });
    // Anyone can recompute the links from the entries alone.
    let prev = GENESIS_HASH;
    for (const entry of entries) {
      expect(entry.prevHash).toBe(prev);
      expect(custodyHash(prev, fieldsOf(entry))).toBe(entry.hash);
      prev = entry.hash;
    }
    const timeline = (await call('GET', `/incidents/${incidentId}/timeline`, viewer)).json().entries.map((e: { action: string }) => e.action);
    expect(timeline).toContain('evidence_added');
  });

  it.skipIf(!enabled)('refuses a file that does not match the SHA-256 sent with it, a viewer, and a closed incident', async () => {
    const incidentId = await newIncident();
    const data = randomBytes(1000);
    const usage = (await t.app.uploads.usage(ws.id)).usedBytes;
    const wrong = await upload(incidentId, data, 'x.bin', { sha256: 'a'.repeat(64) });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().error.code).toBe('SIQ_EVIDENCE_HASH_MISMATCH');
    expect((await call('GET', `/incidents/${incidentId}/evidence`, viewer)).json().evidence).toEqual([]);
    expect((await t.app.uploads.usage(ws.id)).usedBytes).toBe(usage); // nothing kept, nothing counted
    const byViewer = await upload(incidentId, data, 'x.bin', {}, viewer);
    expect(byViewer.statusCode).toBe(403);
    await call('PATCH', `/incidents/${incidentId}`, analyst, { status: 'closed' });
    const closed = await upload(incidentId, data);
    expect(closed.statusCode).toBe(409);
    expect(closed.json().error.code).toBe('SIQ_INCIDENT_CLOSED');
  });

  it.skipIf(!enabled)('verify passes on intact evidence; one flipped byte in storage fails verification loudly and the failure is on the custody chain', async () => {
    const incidentId = await newIncident();
    const data = randomBytes(64 * 1024);
    const item = (await upload(incidentId, data)).json();

    const passed = await call('POST', `/incidents/${incidentId}/evidence/${item.id}/verify`, analyst);
    expect(passed.statusCode).toBe(200);
    expect(passed.json()).toMatchObject({ ok: true, result: 'passed', problems: [], content: { ok: true, actualSha256: sha256(data) }, chain: { ok: true, entries: 1 } });

    await tamper(item.uploadId, 12_345);
    const failed = await call('POST', `/incidents/${incidentId}/evidence/${item.id}/verify`, analyst);
    expect(failed.statusCode).toBe(200);
    const report = failed.json();
    expect(report).toMatchObject({ ok: false, result: 'failed', content: { ok: false, expectedSha256: sha256(data), expectedSize: data.length, actualSize: data.length }, chain: { ok: true } });
    expect(report.content.actualSha256).not.toBe(sha256(data));
    expect(report.problems[0]).toContain(`recorded at upload ${sha256(data)}`);

    const { entries, chain } = await custody(incidentId, item.id);
    expect(chain.ok).toBe(true); // the chain itself is intact: it records the failure
    const last = entries.at(-1)!;
    expect(last).toMatchObject({ action: 'verify', actorUserId: analyst.id, details: { result: 'failed', sha256Expected: sha256(data), sha256Actual: report.content.actualSha256 } });
    expect(entries.map((e) => e.action)).toEqual(['upload', 'verify', 'verify']);
    const record = (await call('GET', `/incidents/${incidentId}/evidence`, viewer)).json().evidence[0];
    expect(record.lastVerification).toBe('failed');
    const timeline = (await call('GET', `/incidents/${incidentId}/timeline`, viewer)).json().entries;
    expect(timeline.at(-1)).toMatchObject({ action: 'evidence_verification_failed' });
  });

  it.skipIf(!enabled)('a custody entry forged in the database breaks the chain, and the table refuses changes', async () => {
    const incidentId = await newIncident();
    const item = (await upload(incidentId, randomBytes(100))).json();
    const { db } = t.app.platform;
    await expect(db.query("UPDATE evidence_custody SET details = '{}' WHERE evidence_id = $1", [item.id])).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM evidence_custody WHERE evidence_id = $1', [item.id])).rejects.toThrow(/append-only/);
    await expect(db.query("UPDATE evidence SET sha256 = repeat('0', 64) WHERE id = $1", [item.id])).rejects.toThrow(/immutable/);
    // An entry inserted behind the service's back, with a made-up hash.
    await db.query("INSERT INTO evidence_custody (workspace_id, evidence_id, seq, action, created_at, prev_hash, hash) VALUES ($1, $2, 2, 'view', now(), 'f00', 'bad')", [ws.id, item.id]);
    const report = (await call('POST', `/incidents/${incidentId}/evidence/${item.id}/verify`, analyst)).json();
    expect(report).toMatchObject({ ok: false, content: { ok: true }, chain: { ok: false } });
    expect(report.chain.problems.join(' ')).toContain('entry 2');
  });

  it.skipIf(!enabled)('exports the incident as one archive that passes `sha256sum -c`, with an export entry on each chain', async () => {
    const incidentId = await newIncident('Export me');
    const one = randomBytes(50_000);
    const two = Buffer.from('suspicious script\n');
    const first = (await upload(incidentId, one, 'disk image (1).bin')).json();
    const second = (await upload(incidentId, two, '../../etc/passwd')).json();
    await call('POST', `/incidents/${incidentId}/comments`, analyst, { text: 'exporting for legal' });

    const res = await call('GET', `/incidents/${incidentId}/export`, analyst);
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    expect(res.headers['content-type']).toBe('application/gzip');
    const dir = mkdtempSync(join(tmpdir(), 'siq-export-'));
    try {
      writeFileSync(join(dir, 'export.tar.gz'), res.rawPayload);
      await run('tar', ['-xzf', 'export.tar.gz'], { cwd: dir });
      const root = join(dir, `incident-${incidentId}`);
      const check = await run('sha256sum', ['-c', 'SHA256SUMS'], { cwd: root });
      expect(check.stdout).toContain('incident.json: OK');
      // The chain-checking recipe docs/incidents.md gives outsiders, run as written.
      const recipe = /```python\n([\s\S]*?)```/.exec(readFileSync(new URL('../../../docs/incidents.md', import.meta.url), 'utf8'))![1]!;
      writeFileSync(join(dir, 'verify.py'), recipe);
      const checked = await run('python3', [join(dir, 'verify.py')], { cwd: root });
      expect(checked.stdout).toContain(`custody/${first.id}.json chain OK, 2 entries`);
      const manifest = readFileSync(join(root, 'SHA256SUMS'), 'utf8');
      const listed = manifest.trim().split('\n').map((line) => line.slice(66)).sort();
      expect(listed).toEqual([
        'alerts.json', `custody/${first.id}.json`, `custody/${second.id}.json`, `evidence/${first.id}/disk_image_1_.bin`, `evidence/${second.id}/passwd`,
        'events.json', 'incident.json', 'observables.json', 'timeline.json',
      ].sort());
      expect(readFileSync(join(root, `evidence/${first.id}/disk_image_1_.bin`)).equals(one)).toBe(true);
      expect(readdirSync(root).sort()).toEqual(['SHA256SUMS', 'alerts.json', 'custody', 'events.json', 'evidence', 'incident.json', 'observables.json', 'timeline.json']);
      const chain = JSON.parse(readFileSync(join(root, `custody/${first.id}.json`), 'utf8'));
      expect(chain.entries.map((e: { action: string }) => e.action)).toEqual(['upload', 'export']);
      const incident = JSON.parse(readFileSync(join(root, 'incident.json'), 'utf8'));
      expect(incident.incident).toMatchObject({ id: incidentId, title: 'Export me' });
      expect(incident.evidence.map((e: { sha256: string }) => e.sha256)).toEqual([sha256(one), sha256(two)]);
      const timeline = JSON.parse(readFileSync(join(root, 'timeline.json'), 'utf8'));
      expect(timeline.at(-1)).toMatchObject({ action: 'exported' });

      // The same archive altered afterwards fails the outsider's check.
      writeFileSync(join(root, 'timeline.json'), '[]\n');
      await expect(run('sha256sum', ['-c', 'SHA256SUMS'], { cwd: root })).rejects.toMatchObject({ stdout: expect.stringContaining('timeline.json: FAILED') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // Evidence altered in storage: the export still states the hash recorded at upload, so the receiver sees it.
    await tamper(second.uploadId, 0);
    const tampered = await call('GET', `/incidents/${incidentId}/export`, analyst);
    const dir2 = mkdtempSync(join(tmpdir(), 'siq-export-'));
    try {
      writeFileSync(join(dir2, 'export.tar.gz'), tampered.rawPayload);
      await run('tar', ['-xzf', 'export.tar.gz'], { cwd: dir2 });
      await expect(run('sha256sum', ['-c', 'SHA256SUMS'], { cwd: join(dir2, `incident-${incidentId}`) })).rejects.toMatchObject({ stdout: expect.stringContaining(`evidence/${second.id}/passwd: FAILED`) });
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
    const { entries } = await custody(incidentId, second.id);
    expect(entries.map((e) => e.action)).toEqual(['upload', 'export', 'export', 'verify']);
    expect(entries.at(-1)!.details).toMatchObject({ result: 'failed', during: 'export' });
  });

  it.skipIf(!enabled)('deletion: admins only, only once the incident is closed; bytes go, a tombstone with the hash and a final custody entry stay', async () => {
    const incidentId = await newIncident();
    const data = randomBytes(2048);
    const item = (await upload(incidentId, data)).json();
    const path = `/incidents/${incidentId}/evidence/${item.id}`;

    const byAnalyst = await call('DELETE', path, analyst);
    expect(byAnalyst.statusCode).toBe(403);
    const whileOpen = await call('DELETE', path, admin);
    expect(whileOpen.statusCode).toBe(409);
    expect(whileOpen.json().error.code).toBe('SIQ_EVIDENCE_INCIDENT_OPEN');

    await call('PATCH', `/incidents/${incidentId}`, analyst, { status: 'closed' });
    const usageBefore = (await t.app.uploads.usage(ws.id)).usedBytes;
    const deleted = await t.app.inject({ method: 'DELETE', url: url(`${path}?reason=retention%20period%20over`), headers: admin.headers });
    expect(deleted.statusCode, deleted.body).toBe(200);
    expect(deleted.json()).toMatchObject({ id: item.id, sha256: sha256(data), size: data.length, deletedBy: admin.id, deletionReason: 'retention period over' });
    expect((await t.app.uploads.usage(ws.id)).usedBytes).toBe(usageBefore - data.length);
    await expect(t.app.uploads.get(ws.id, item.uploadId)).rejects.toMatchObject({ code: 'SIQ_NOT_FOUND' });

    const listed = (await call('GET', `/incidents/${incidentId}/evidence`, viewer)).json().evidence;
    expect(listed).toEqual([expect.objectContaining({ id: item.id, sha256: sha256(data), deletedAt: expect.any(String) })]);
    const download = await call('GET', `${path}/download`, viewer);
    expect(download.statusCode).toBe(410);
    expect(download.json().error.code).toBe('SIQ_EVIDENCE_DELETED');
    const again = await call('DELETE', path, admin);
    expect(again.json().error.code).toBe('SIQ_EVIDENCE_DELETED');

    const report = (await call('POST', `${path}/verify`, analyst)).json();
    expect(report).toMatchObject({ ok: true, content: { checked: false }, chain: { ok: true }, entry: null });
    const { entries, chain } = await custody(incidentId, item.id);
    expect(chain.ok).toBe(true);
    expect(entries.map((e) => e.action)).toEqual(['upload', 'delete']);
    expect(entries.at(-1)).toMatchObject({ actorUserId: admin.id, details: { sha256: sha256(data), reason: 'retention period over' } });
  });

  it.skipIf(!enabled)('other workspaces cannot reach evidence, its custody or the export', async () => {
    const incidentId = await newIncident('Secret case');
    const item = (await upload(incidentId, Buffer.from('top secret bytes'))).json();
    const paths = [`/incidents/${incidentId}/evidence`, `/incidents/${incidentId}/evidence/${item.id}`, `/incidents/${incidentId}/evidence/${item.id}/download`, `/incidents/${incidentId}/evidence/${item.id}/custody`, `/incidents/${incidentId}/export`];
    for (const path of paths) {
      for (const workspaceId of [ws.id, other.id]) {
        const res = await call('GET', path, outsider, undefined, workspaceId);
        expect(res.statusCode, `${path} in ${workspaceId}`).toBe(404);
        expect(res.body).not.toContain('top secret');
      }
    }
    const verify = await call('POST', `/incidents/${incidentId}/evidence/${item.id}/verify`, outsider, undefined, other.id);
    expect(verify.statusCode).toBe(404);
    const body = multipart({ name: 'x', data: Buffer.from('x') });
    const smuggled = await t.app.inject({ method: 'POST', url: url(`/incidents/${incidentId}/evidence`, other.id), headers: { ...outsider.headers, ...body.headers }, payload: body.payload });
    expect(smuggled.statusCode).toBe(404);
    // Row-level security: the other workspace's transaction sees none of it.
    const seen = await withWorkspace(t.app.platform.db, other.id, async (tx) => ({
      evidence: (await tx.query('SELECT 1 FROM evidence')).rows.length,
      custody: (await tx.query('SELECT 1 FROM evidence_custody')).rows.length,
      incidents: (await tx.query('SELECT 1 FROM incidents')).rows.length,
    }));
    expect(seen).toEqual({ evidence: 0, custody: 0, incidents: 0 });
    const { entries } = await custody(incidentId, item.id);
    expect(entries.map((e) => e.action)).toEqual(['upload']);
  });
});
