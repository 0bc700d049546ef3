import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from '../../../test/helpers/app.js';
import { startS3Server, type S3Server } from '../../../test/helpers/s3.js';
import { testDatabaseUrl, uniqueName } from '../../../test/helpers/services.js';
import type { StoredUpload } from './service.js';

const BOUNDARY = '----siq-test-boundary-7d1f';

function multipart(parts: { purpose?: string; filename: string; content: Buffer; contentType?: string }): { payload: Buffer; headers: Record<string, string> } {
  const chunks: Buffer[] = [];
  if (parts.purpose !== undefined) chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n${parts.purpose}\r\n`));
  chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${parts.filename}"\r\nContent-Type: ${parts.contentType ?? 'application/octet-stream'}\r\n\r\n`));
  chunks.push(parts.content, Buffer.from(`\r\n--${BOUNDARY}--\r\n`));
  return { payload: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } };
}

/** A Windows executable's first bytes ("MZ" DOS header with a PE offset). */
function fakeExe(): Buffer {
  const buf = Buffer.alloc(4096, 0);
  buf.write('MZ', 0, 'latin1');
  buf.writeUInt32LE(0x80, 0x3c);
  buf.write('PE\0\0', 0x80, 'latin1');
  return buf;
}

const text = (n: number, seed = 'a') => Buffer.from(seed.repeat(n).slice(0, n));

const implementations = [
  { name: 'PGlite + local store', enabled: true, postgres: false, s3: false },
  { name: 'PostgreSQL + s3rver', enabled: Boolean(testDatabaseUrl), postgres: true, s3: true },
];

describe.each(implementations)('uploads on $name', ({ enabled, postgres, s3 }) => {
  let t: TestApp;
  let server: S3Server | undefined;
  let owner: TestUser;
  let analyst: TestUser;
  let viewer: TestUser;
  let ws: { id: string };

  beforeAll(async () => {
    if (!enabled) return;
    const settings: Record<string, string> = {};
    if (s3) {
      server = await startS3Server();
      Object.assign(settings, { S3_ENDPOINT: server.endpoint, S3_ACCESS_KEY: server.accessKey, S3_SECRET_KEY: server.secretKey, S3_BUCKET_PREFIX: uniqueName('siqup').replace(/_/g, '-').toLowerCase() });
    }
    t = await buildTestApp(settings, { postgres });
    owner = await buildUser(t.app);
    analyst = await buildUser(t.app);
    viewer = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner);
    await addMember(t.app, ws.id, owner, analyst, 'analyst');
    await addMember(t.app, ws.id, owner, viewer, 'viewer');
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await server?.stop();
  });

  const upload = (user: TestUser, purpose: string | undefined, filename: string, content: Buffer, workspaceId = ws.id) => {
    const body = multipart({ purpose, filename, content });
    return t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${workspaceId}/uploads`, headers: { ...user.headers, ...body.headers }, payload: body.payload });
  };
  const usage = async (workspaceId = ws.id) => (await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${workspaceId}/storage`, headers: owner.headers })).json() as { usedBytes: number; quotaBytes: number };
  const setQuota = (quotaBytes: number | null, workspaceId = ws.id, user = owner) =>
    quotaBytes === null
      ? t.app.inject({ method: 'DELETE', url: `/api/v1/workspaces/${workspaceId}/storage/quota`, headers: user.headers })
      : t.app.inject({ method: 'PUT', url: `/api/v1/workspaces/${workspaceId}/storage/quota`, headers: user.headers, payload: { quotaBytes } });
  /** Fetches a link: the local store's through the app, S3's from s3rver. */
  const fetchUrl = async (url: string): Promise<{ status: number; body: Buffer; headers: Record<string, unknown>; code?: string }> => {
    const parsed = new URL(url);
    if (!s3) {
      const res = await t.app.inject({ method: 'GET', url: parsed.pathname + parsed.search });
      return { status: res.statusCode, body: res.rawPayload, headers: res.headers, code: res.statusCode >= 400 ? res.json().error?.code : undefined };
    }
    const res = await fetch(url);
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: Object.fromEntries(res.headers) };
  };
  const objectKeys = async (prefix: string) => {
    const keys: string[] = [];
    for await (const info of t.app.platform.objects.list('files', prefix)) keys.push(info.key);
    return keys;
  };

  it.skipIf(!enabled)('stores an attachment, answers its metadata with a signed link, and serves the same bytes as a download', async () => {
    const content = Buffer.from('incident notes\nline two\n');
    const res = await upload(analyst, 'attachment', 'notes.txt', content);
    expect(res.statusCode, res.body).toBe(201);
    const stored = res.json() as StoredUpload & { url: string };
    expect(stored).toMatchObject({ workspaceId: ws.id, purpose: 'attachment', bucket: 'files', filename: 'notes.txt', contentType: 'text/plain', size: content.length, public: false, createdBy: analyst.id });
    expect(stored.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    expect(stored.key.startsWith('public/')).toBe(false);

    const meta = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/uploads/${stored.id}`, headers: viewer.headers });
    expect(meta.statusCode).toBe(200);
    const link = await fetchUrl(meta.json().url);
    expect(link.status).toBe(200);
    expect(link.body.equals(content)).toBe(true);
    expect(String(link.headers['content-disposition'])).toMatch(/^attachment/);

    const direct = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/uploads/${stored.id}/content`, headers: viewer.headers });
    expect(direct.statusCode).toBe(200);
    expect(direct.rawPayload.equals(content)).toBe(true);
    expect(direct.headers['content-disposition']).toMatch(/^attachment; filename="notes.txt"/);
    expect(direct.headers['x-content-type-options']).toBe('nosniff');

    const audit = await t.app.platform.db.query<{ action: string }>("SELECT action FROM audit_logs WHERE workspace_id = $1 AND resource_id = $2", [ws.id, stored.id]);
    expect(audit.rows.map((r) => r.action)).toEqual(['upload.create']);
  });

  it.skipIf(!enabled)('refuses an .exe renamed .png as the wrong type, for a logo and an attachment, and stores nothing', async () => {
    const before = await usage();
    for (const purpose of ['logo', 'attachment']) {
      const res = await upload(owner, purpose, 'company-logo.png', fakeExe());
      expect(res.statusCode, res.body).toBe(415);
      expect(res.json().error.code).toBe('SIQ_UPLOAD_TYPE_NOT_ALLOWED');
      expect(res.json().error.details.detectedType).toBe('application/x-msdownload');
    }
    expect(await usage()).toEqual(before);
  });

  it.skipIf(!enabled)('checks membership and the upload right before looking at the file', async () => {
    const anonymous = await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/uploads`, ...multipart({ purpose: 'logo', filename: 'x.png', content: fakeExe() }) });
    expect(anonymous.statusCode).toBe(401);
    const byViewer = await upload(viewer, 'logo', 'x.png', fakeExe());
    expect(byViewer.statusCode).toBe(403);
    expect(byViewer.json().error.code).toBe('SIQ_FORBIDDEN');
    const noPurpose = await upload(owner, undefined, 'x.txt', text(10));
    expect(noPurpose.json().error.code).toBe('SIQ_UPLOAD_INVALID');
  });

  it.skipIf(!enabled)('answers 413 SIQ_UPLOAD_TOO_LARGE for a logo above its limit, with nothing stored', async () => {
    const before = await usage();
    const keysBefore = await objectKeys(`public/logos/${ws.id}/`);
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#336699' } }).png().toBuffer();
    const oversized = Buffer.concat([png, Buffer.alloc(t.app.platform.config.uploads.maxBytes.logo + 1 - png.length, 0)]);
    const res = await upload(owner, 'logo', 'big.png', oversized);
    expect(res.statusCode, res.body).toBe(413);
    expect(res.json().error.code).toBe('SIQ_UPLOAD_TOO_LARGE');
    expect(await usage()).toEqual(before);
    expect(await objectKeys(`public/logos/${ws.id}/`)).toEqual(keysBefore);
  });

  it.skipIf(!enabled)('refuses a file that would exceed the quota with the quota code, leaving usage and storage as they were', async () => {
    const other = await buildWorkspace(t.app, owner);
    await upload(owner, 'attachment', 'a.txt', text(1000), other.id);
    const { usedBytes } = await usage(other.id);
    expect((await setQuota(usedBytes + 500, other.id)).statusCode).toBe(200);
    const res = await upload(owner, 'attachment', 'b.txt', text(501), other.id);
    expect(res.statusCode, res.body).toBe(413);
    expect(res.json().error.code).toBe('SIQ_STORAGE_QUOTA_EXCEEDED');
    expect(await usage(other.id)).toEqual({ usedBytes, quotaBytes: usedBytes + 500 });
    expect(await objectKeys(`workspaces/${other.id}/`)).toHaveLength(1);
    // Exactly filling the quota is allowed.
    expect((await upload(owner, 'attachment', 'c.txt', text(500), other.id)).statusCode).toBe(201);
    expect((await usage(other.id)).usedBytes).toBe(usedBytes + 500);
    // Only admins set quotas; DELETE goes back to the default.
    expect((await setQuota(1, ws.id, analyst)).statusCode).toBe(403);
    expect((await setQuota(0, other.id)).json()).toEqual({ usedBytes: usedBytes + 500, quotaBytes: 0 });
    expect((await setQuota(null, other.id)).json().quotaBytes).toBe(t.app.platform.config.uploads.quotaBytes);
  });

  it.skipIf(!enabled)('lets 20 parallel uploads against a nearly full quota never exceed it', async () => {
    const other = await buildWorkspace(t.app, owner);
    await upload(owner, 'attachment', 'base.txt', text(4000), other.id);
    const { usedBytes } = await usage(other.id);
    const quota = usedBytes + 10 * 1000 + 999;
    await setQuota(quota, other.id);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => upload(owner, 'attachment', `p${i}.txt`, text(1000, String.fromCharCode(97 + i)), other.id)));
    const codes = results.map((r) => (r.statusCode === 201 ? 'ok' : r.json().error.code));
    expect(codes.filter((c) => c === 'ok')).toHaveLength(10);
    expect(codes.filter((c) => c === 'SIQ_STORAGE_QUOTA_EXCEEDED')).toHaveLength(10);
    const after = await usage(other.id);
    expect(after.usedBytes).toBe(usedBytes + 10_000);
    expect(after.usedBytes).toBeLessThanOrEqual(quota);
    const rows = await t.app.platform.db.query<{ n: number; bytes: number }>('SELECT count(*)::int AS n, coalesce(sum(size), 0)::int AS bytes FROM uploads WHERE workspace_id = $1', [other.id]);
    expect(rows.rows[0]).toEqual({ n: 11, bytes: after.usedBytes });
    expect(await objectKeys(`workspaces/${other.id}/`)).toHaveLength(11);
  });

  it.skipIf(!enabled)('returns the bytes to the quota on delete, and the file is gone', async () => {
    const before = await usage();
    const res = await upload(analyst, 'attachment', 'tmp.txt', text(2345));
    const { id, key } = res.json() as StoredUpload;
    expect((await usage()).usedBytes).toBe(before.usedBytes + 2345);
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/workspaces/${ws.id}/uploads/${id}`, headers: analyst.headers });
    expect(del.statusCode).toBe(204);
    expect(await usage()).toEqual(before);
    expect(await t.app.platform.objects.head('files', key)).toBeNull();
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/uploads/${id}`, headers: analyst.headers })).statusCode).toBe(404);
    await expect(t.app.uploads.delete(ws.id, id)).rejects.toMatchObject({ code: 'SIQ_NOT_FOUND' });
  });

  it.skipIf(!enabled)('signed links work, expire, and a tampered one is refused', async () => {
    const { id } = (await upload(analyst, 'attachment', 'signed.txt', text(64, 's'))).json() as StoredUpload;
    const url = await t.app.uploads.signedUrl(ws.id, id, 60);
    expect((await fetchUrl(url)).status).toBe(200);
    if (!s3) {
      const tampered = new URL(url);
      const sig = tampered.searchParams.get('signature')!;
      tampered.searchParams.set('signature', (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1));
      const bad = await fetchUrl(tampered.toString());
      expect(bad.status).toBe(403);
      expect(bad.code).toBe('SIQ_SIGNED_URL_INVALID');
      // A valid signature does not carry over to another file.
      const otherKey = new URL(url);
      otherKey.pathname = otherKey.pathname.replace(id, '00000000-0000-4000-8000-000000000000');
      expect((await fetchUrl(otherKey.toString())).code).toBe('SIQ_SIGNED_URL_INVALID');
    } else {
      // s3rver does not recompute SigV4 signatures (real S3 and MinIO do); it refuses the forged
      // credential such a link carries.
      const forged = new URL(url);
      forged.searchParams.set('X-Amz-Credential', forged.searchParams.get('X-Amz-Credential')!.replace(/^[^/]+/, 'FORGED'));
      expect((await fetchUrl(forged.toString())).status).toBe(403);
    }
    const short = await t.app.uploads.signedUrl(ws.id, id, 1);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const expired = await fetchUrl(short);
    expect(expired.status).toBeGreaterThanOrEqual(400);
    if (!s3) expect(expired.code).toBe('SIQ_SIGNED_URL_EXPIRED');
  });

  it.skipIf(!enabled)('strips EXIF (GPS included) from a JPEG attachment and resizes it', async () => {
    const original = await sharp({ create: { width: 5000, height: 40, channels: 3, background: '#884422' } })
      .jpeg()
      .withExif({ IFD0: { Make: 'SpyCam', Model: 'GPS-9000' }, IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '48/1 51/1 24/1', GPSLongitudeRef: 'E', GPSLongitude: '2/1 21/1 3/1' } })
      .toBuffer();
    const input = await sharp(original).metadata();
    expect(input.exif?.includes(Buffer.from('GPS-9000'))).toBe(true);
    const res = await upload(analyst, 'attachment', 'photo.png', original);
    expect(res.statusCode, res.body).toBe(201);
    const stored = res.json() as StoredUpload;
    expect(stored.contentType).toBe('image/jpeg');
    const bytes = Buffer.concat(await (await t.app.uploads.open(ws.id, stored.id)).toArray());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(stored.sha256);
    expect(bytes.length).toBe(stored.size);
    const meta = await sharp(bytes).metadata();
    expect(meta.exif).toBeUndefined();
    expect(meta.width).toBe(4096);
    expect(bytes.includes(Buffer.from('Exif\0\0'))).toBe(false);
    expect(bytes.includes(Buffer.from('GPS-9000'))).toBe(false);
  });

  it.skipIf(!enabled)('keeps logos public under public/ and readable without a signature', async () => {
    const png = await sharp({ create: { width: 1200, height: 600, channels: 4, background: '#00aa00ff' } }).png().toBuffer();
    const res = await upload(owner, 'logo', 'logo.png', png);
    expect(res.statusCode, res.body).toBe(201);
    const logo = res.json() as StoredUpload & { url: string; urlExpiresAt: string | null };
    expect(logo.public).toBe(true);
    expect(logo.key.startsWith(`public/logos/${ws.id}/`)).toBe(true);
    expect(logo.urlExpiresAt).toBeNull();
    expect(new URL(logo.url).search).toBe('');
    const fetched = await fetchUrl(logo.url);
    expect(fetched.status).toBe(200);
    const meta = await sharp(fetched.body).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 512, height: 256 });
  });

  it.skipIf(!enabled)('stores evidence byte for byte with the hash of the original, and keeps its bytes behind the evidence API', async () => {
    const original = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#123456' } }).jpeg().withExif({ IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '1/1 2/1 3/1' } }).toBuffer();
    for (const content of [original, fakeExe(), randomBytes(70_000)]) {
      const stored = await t.app.uploads.storeStream(ws.id, Readable.from([content]), { purpose: 'evidence', filename: 'sample.bin', createdBy: null });
      expect(stored.sha256).toBe(createHash('sha256').update(content).digest('hex'));
      expect(stored.size).toBe(content.length);
      const bytes = Buffer.concat(await (await t.app.uploads.open(ws.id, stored.id)).toArray());
      expect(bytes.equals(content)).toBe(true);
      const signed = await fetchUrl(await t.app.uploads.signedUrl(ws.id, stored.id));
      expect(signed.headers['content-type']).toBe('application/octet-stream');
      expect(String(signed.headers['content-disposition'])).toMatch(/^attachment/);
      if (!s3) expect(signed.headers['x-content-type-options']).toBe('nosniff');
      const viaRoute = await t.app.inject({ method: 'GET', url: `/api/v1/workspaces/${ws.id}/uploads/${stored.id}/content`, headers: owner.headers });
      expect(viaRoute.statusCode).toBe(403);
    }
  });

  it.skipIf(!enabled)('refuses another workspace\'s uploads, through the routes and the service', async () => {
    const stranger = await buildUser(t.app);
    const strangerWs = await buildWorkspace(t.app, stranger);
    const { id } = (await upload(owner, 'attachment', 'secret.txt', text(100, 'x'))).json() as StoredUpload;
    for (const [method, path] of [['GET', ''], ['GET', '/content'], ['DELETE', '']] as const) {
      const own = await t.app.inject({ method, url: `/api/v1/workspaces/${strangerWs.id}/uploads/${id}${path}`, headers: stranger.headers });
      expect(own.statusCode).toBe(404);
      const theirs = await t.app.inject({ method, url: `/api/v1/workspaces/${ws.id}/uploads/${id}${path}`, headers: stranger.headers });
      expect(theirs.statusCode).toBe(404);
    }
    await expect(t.app.uploads.get(strangerWs.id, id)).rejects.toMatchObject({ code: 'SIQ_NOT_FOUND' });
    await expect(t.app.uploads.delete(strangerWs.id, id)).rejects.toMatchObject({ code: 'SIQ_NOT_FOUND' });
    expect((await t.app.uploads.get(ws.id, id)).id).toBe(id);
  });

  it.skipIf(!enabled)('streams a 1 GB upload over HTTP with the process memory staying flat', async () => {
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const port = (t.app.server.address() as AddressInfo).port;
    expect(address).toContain(String(port));
    const total = 1024 * 1024 * 1024;
    const chunk = randomBytes(1024 * 1024);
    const hash = createHash('sha256');
    async function* body() {
      yield Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nevidence\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="disk.img"\r\nContent-Type: application/octet-stream\r\n\r\n`);
      for (let sent = 0; sent < total; sent += chunk.length) {
        hash.update(chunk);
        yield chunk;
      }
      yield Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
    }
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    try {
      const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: `/api/v1/workspaces/${ws.id}/uploads`, headers: { ...owner.headers, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } }, (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (data += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        });
        req.on('error', reject);
        pipeline(Readable.from(body()), req).catch(reject);
      });
      expect(response.status, response.body).toBe(201);
      const stored = JSON.parse(response.body) as StoredUpload;
      expect(stored.size).toBe(total);
      expect(stored.sha256).toBe(hash.digest('hex'));
      expect((await t.app.platform.objects.head('files', stored.key))?.size).toBe(total);
      expect(peak - baseline).toBeLessThan(150 * 1024 * 1024);
      await t.app.uploads.delete(ws.id, stored.id);
    } finally {
      clearInterval(sampler);
    }
  }, 180_000);
});
