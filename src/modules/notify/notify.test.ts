import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { addMember, buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from '../../../test/helpers/app.js';
import { testDatabaseUrl } from '../../../test/helpers/services.js';
import { createDatabase, type Database } from '../../platform/db/index.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import type { AlertNotice } from '../alerts/types.js';
import { resolveChannelConfig } from './channels.js';
import { retryDelayMs } from './outbox.js';
import { SecretBox, SecretBoxError } from './secret-box.js';
import { channelMatches, NotifyService, scrub, startNotificationWorker } from './service.js';

// --- a local HTTP receiver: records every request, answers what the test says

interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Receiver {
  port: number;
  base: string;
  received: Received[];
  respond: (req: Received) => { status: number; body?: string; headers?: Record<string, string>; delayMs?: number };
  close(): Promise<void>;
}

async function startReceiver(port = 0): Promise<Receiver> {
  const receiver = {
    received: [] as Received[],
    respond: (_req: Received) => ({ status: 200, body: 'ok' }) as ReturnType<Receiver['respond']>,
  } as Receiver;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      receiver.received.push(entry);
      const answer = receiver.respond(entry);
      setTimeout(() => res.writeHead(answer.status, answer.headers ?? {}).end(answer.body ?? ''), answer.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  receiver.port = (server.address() as AddressInfo).port;
  receiver.base = `http://127.0.0.1:${receiver.port}`;
  receiver.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return receiver;
}

async function freePort(): Promise<number> {
  const r = await startReceiver();
  await r.close();
  return r.port;
}

// --- a local SMTP server

interface Mail {
  from: string;
  to: string[];
  user?: string;
  data: string;
}

async function startSmtp(): Promise<{ port: number; mails: Mail[]; close(): Promise<void> }> {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    onAuth(auth, _session, callback) {
      if (auth.username === 'notifier' && auth.password === 'smtp-pa55word-xyz') return callback(null, { user: auth.username });
      return callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      let data = '';
      stream.on('data', (d: Buffer) => (data += d.toString()));
      stream.on('end', () => {
        mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), user: session.user as string | undefined, data });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return { port, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function verifySignature(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  const timestamp = String(headers['x-sentineliq-timestamp']);
  const given = String(headers['x-sentineliq-signature']);
  const expected = `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
  return given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

const WEBHOOK_SECRET = 'whsec-9d8c7b6a5f4e3d2c1b0a';
const BOT_TOKEN = '123456789:AAH-telegram-bot-token-secret_XYZ';
const HOUR = 3_600_000;

function alertFor(workspaceId: string, overrides: Partial<AlertNotice> = {}): AlertNotice {
  return {
    id: randomUUID(),
    workspaceId,
    ruleId: 'rule-ssh-bruteforce',
    ruleTitle: 'SSH brute force',
    ruleKind: 'threshold',
    severity: 'high',
    groupKey: '10.0.0.5',
    status: 'new',
    count: 12,
    firstSeen: '2025-01-01T10:00:00.000Z',
    lastSeen: '2025-01-01T10:05:00.000Z',
    tags: ['attack.t1110.001'],
    ...overrides,
  };
}

describe('secret box', () => {
  it('round-trips, uses a fresh IV each time, and refuses another record or another key', () => {
    const box = new SecretBox('master-secret-for-tests-0123456789', 'notification-channels');
    const a = box.seal('https://hooks.slack.com/services/T0/B0/xyz', 'ws:1:ch:1');
    const b = box.seal('https://hooks.slack.com/services/T0/B0/xyz', 'ws:1:ch:1');
    expect(a.ciphertext).not.toBe(b.ciphertext);
    expect(a.ciphertext).not.toContain('hooks.slack.com');
    expect(a.keyId).toBe(box.keyId);
    expect(box.open(a, 'ws:1:ch:1')).toBe('https://hooks.slack.com/services/T0/B0/xyz');
    expect(() => box.open(a, 'ws:1:ch:2')).toThrow(SecretBoxError);
    const other = new SecretBox('another-master-secret-9876543210', 'notification-channels');
    expect(other.keyId).not.toBe(box.keyId);
    expect(() => other.open(a, 'ws:1:ch:1')).toThrow(/JWT_SECRET changed/);
    const tampered = { ...a, ciphertext: `${a.ciphertext.slice(0, -2)}AA` };
    expect(() => box.open(tampered, 'ws:1:ch:1')).toThrow(SecretBoxError);
  });
});

describe('channel rules', () => {
  const dev = { production: false, platformSmtp: false };
  const prod = { production: true, platformSmtp: false };
  const code = (fn: () => unknown) => {
    try {
      fn();
      return 'ok';
    } catch (err) {
      return (err as { code?: string }).code;
    }
  };

  it('requires https, except http to loopback (outside production, or for webhooks in production)', () => {
    expect(code(() => resolveChannelConfig('slack', { url: 'https://hooks.slack.com/services/x' }, prod))).toBe('ok');
    expect(code(() => resolveChannelConfig('slack', { url: 'http://hooks.slack.com/services/x' }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('slack', { url: 'http://127.0.0.1:9/x' }, dev))).toBe('ok');
    expect(code(() => resolveChannelConfig('slack', { url: 'http://127.0.0.1:9/x' }, prod))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('webhook', { url: 'http://localhost:9/x', secret: WEBHOOK_SECRET }, prod))).toBe('ok');
    expect(code(() => resolveChannelConfig('webhook', { url: 'http://example.com/x', secret: WEBHOOK_SECRET }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('webhook', { url: 'ftp://example.com/x', secret: WEBHOOK_SECRET }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('webhook', { url: 'https://u:p@example.com/x', secret: WEBHOOK_SECRET }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
  });

  it('checks each type\'s required and foreign settings', () => {
    expect(code(() => resolveChannelConfig('webhook', { url: 'https://example.com/x' }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('webhook', { url: 'https://example.com/x', secret: 'short' }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('slack', { url: 'https://hooks.slack.com/x', botToken: BOT_TOKEN }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('telegram', { botToken: 'not-a-token', chatId: '-100123' }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('telegram', { botToken: BOT_TOKEN, chatId: 'nope nope' }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('telegram', { botToken: BOT_TOKEN, chatId: '@sentineliq_alerts' }, dev))).toBe('ok');
    expect(code(() => resolveChannelConfig('email', { recipients: ['soc@example.com'] }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID'); // no SMTP anywhere
    expect(code(() => resolveChannelConfig('email', { recipients: ['soc@example.com'] }, { ...dev, platformSmtp: true }))).toBe('ok');
    expect(code(() => resolveChannelConfig('email', { recipients: ['not an address'], smtpUrl: 'smtp://mail.example.com' }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    expect(code(() => resolveChannelConfig('email', { recipients: ['a@example.com'], smtpUrl: 'https://mail.example.com' }, dev))).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    const split = resolveChannelConfig('email', { recipients: ['A@Example.com'], smtpUrl: 'smtps://u:p@mail.example.com:465' }, dev);
    expect(split.settings).toEqual({ recipients: ['a@example.com'], smtpHint: 'mail.example.com:465' });
    expect(split.secrets).toEqual({ smtpUrl: 'smtps://u:p@mail.example.com:465' });
  });

  it('filters by minimum severity, rule ids and tags (a tag matches the tags below it)', () => {
    const alert = { severity: 'medium' as const, ruleId: 'r1', tags: ['attack.t1059.001', 'Linux'] };
    expect(channelMatches({ minSeverity: 'low', ruleIds: [], tags: [] }, alert)).toBe(true);
    expect(channelMatches({ minSeverity: 'medium', ruleIds: [], tags: [] }, alert)).toBe(true);
    expect(channelMatches({ minSeverity: 'high', ruleIds: [], tags: [] }, alert)).toBe(false);
    expect(channelMatches({ minSeverity: 'low', ruleIds: ['r2'], tags: [] }, alert)).toBe(false);
    expect(channelMatches({ minSeverity: 'low', ruleIds: ['r2', 'r1'], tags: [] }, alert)).toBe(true);
    expect(channelMatches({ minSeverity: 'low', ruleIds: [], tags: ['attack.t1059'] }, alert)).toBe(true);
    expect(channelMatches({ minSeverity: 'low', ruleIds: [], tags: ['linux'] }, alert)).toBe(true);
    expect(channelMatches({ minSeverity: 'low', ruleIds: [], tags: ['attack.t105'] }, alert)).toBe(false);
  });

  it('backs off exponentially from 30 s, capped at one hour, with jitter', () => {
    expect(retryDelayMs(1, () => 0.5)).toBe(30_000);
    expect(retryDelayMs(2, () => 0.5)).toBe(60_000);
    expect(retryDelayMs(5, () => 0.5)).toBe(480_000);
    expect(retryDelayMs(9, () => 0.5)).toBe(HOUR);
    expect(retryDelayMs(30, () => 1)).toBe(HOUR);
    expect(retryDelayMs(1, () => 0)).toBe(24_000);
    expect(retryDelayMs(1, () => 1)).toBe(36_000);
  });

  it('scrubs secrets from error texts', () => {
    const message = scrub('connect to http://127.0.0.1/hook/tok-123456 failed; token=abcdef; bot123:xyz', { url: 'http://127.0.0.1/hook/tok-123456', botToken: '123:xyz' });
    expect(message).not.toContain('tok-123456');
    expect(message).not.toContain('abcdef');
    expect(message).not.toContain('123:xyz');
  });
});

const implementations = [
  { name: 'pglite', enabled: true, postgres: false },
  { name: 'postgres', enabled: Boolean(testDatabaseUrl), postgres: true },
];

describe.each(implementations)('notifications on $name', ({ enabled, postgres }) => {
  let t: TestApp;
  let owner: TestUser;
  let analyst: TestUser;
  let outsider: TestUser;
  let ws: { id: string };
  let otherWs: { id: string };
  let receiver: Receiver;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  const api = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, user: TestUser, payload?: object) =>
    t.app.inject({ method, url: `/api/v1/workspaces/${path}`, headers: user.headers, ...(payload ? { payload } : {}) });
  const createChannel = async (body: object, workspaceId = ws.id) => {
    const res = await api('POST', `${workspaceId}/notification-channels`, owner, body);
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; [k: string]: unknown };
  };
  const webhookChannel = (path = '/hook', extra: object = {}) =>
    createChannel({ name: 'SOAR', type: 'webhook', config: { url: `${receiver.base}${path}`, secret: WEBHOOK_SECRET }, ...extra });
  const enqueue = (alert: AlertNotice, service: NotifyService = t.app.notify) => t.app.platform.db.transaction((tx) => service.enqueueForAlert(tx, alert));
  const outbox = async (channelId: string) =>
    (await t.app.platform.db.query<{ id: string; status: string; attempts: number; next_attempt_at: Date; last_error: string | null; last_attempt_at: Date | null }>(
      'SELECT id, status, attempts, next_attempt_at, last_error, last_attempt_at FROM notification_outbox WHERE channel_id = $1 ORDER BY created_at', [channelId])).rows;

  beforeAll(async () => {
    if (!enabled) return;
    smtp = await startSmtp();
    receiver = await startReceiver();
    t = await buildTestApp({ SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, SMTP_FROM: 'SentinelIQ <siq@example.test>', PUBLIC_URL: 'https://siq.example.test' }, { postgres });
    owner = await buildUser(t.app);
    analyst = await buildUser(t.app);
    outsider = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner);
    otherWs = await buildWorkspace(t.app, outsider);
    await addMember(t.app, ws.id, owner, analyst, 'analyst');
  });
  afterAll(async () => {
    if (!enabled) return;
    await t.close();
    await receiver.close();
    await smtp.close();
  });
  afterEach(async () => {
    if (!enabled) return;
    await t.app.platform.db.query('DELETE FROM notification_channels');
    receiver.received.length = 0;
    receiver.respond = () => ({ status: 200, body: 'ok' });
  });

  it.skipIf(!enabled)('delivers an alert to a webhook with a valid HMAC signature, once per alert and channel', async () => {
    const channel = await webhookChannel();
    const alert = alertFor(ws.id);
    expect(await enqueue(alert)).toBe(1);
    expect(await enqueue(alert)).toBe(0); // the same alert again adds nothing
    expect(await t.app.notify.deliverDue()).toEqual({ sent: 1, failed: 0, retried: 0 });
    expect(await t.app.notify.deliverDue()).toEqual({ sent: 0, failed: 0, retried: 0 });

    expect(receiver.received).toHaveLength(1);
    const [req] = receiver.received;
    expect(req!.path).toBe('/hook');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(verifySignature(WEBHOOK_SECRET, req!.headers, req!.body)).toBe(true);
    expect(verifySignature('another-secret-0123456789', req!.headers, req!.body)).toBe(false);
    const [row] = await outbox(channel.id);
    expect(req!.headers['x-sentineliq-delivery']).toBe(row!.id);
    expect(req!.headers['x-sentineliq-event']).toBe('alert.created');
    const body = JSON.parse(req!.body);
    expect(body).toMatchObject({ event: 'alert.created', deliveryId: row!.id, workspaceId: ws.id, channelId: channel.id, alert });
    expect(body.link).toBe(`https://siq.example.test/workspaces/${ws.id}/alerts/${alert.id}`);

    const deliveries = await api('GET', `${ws.id}/notification-channels/${channel.id}/deliveries`, owner);
    expect(deliveries.statusCode).toBe(200);
    expect(deliveries.json().deliveries).toEqual([expect.objectContaining({ id: row!.id, alertId: alert.id, kind: 'alert', status: 'sent', attempts: 1, lastError: null, lastStatusCode: 200, alert: { severity: 'high', ruleTitle: 'SSH brute force' } })]);
    const shown = (await api('GET', `${ws.id}/notification-channels/${channel.id}`, owner)).json();
    expect(shown.lastDelivery).toMatchObject({ id: row!.id, status: 'sent', attempts: 1 });
  });

  it.skipIf(!enabled)('retries with backoff while the receiver is down (refused, then 500) and delivers when it is back, with one delivery id', async () => {
    const port = await freePort();
    const channel = await createChannel({ name: 'down', type: 'webhook', config: { url: `http://127.0.0.1:${port}/hook/tok-s3cr3t-path`, secret: WEBHOOK_SECRET } });
    await enqueue(alertFor(ws.id));
    const t0 = Date.now();

    // 1: connection refused → retry in 30 s ± 20 %.
    const now1 = new Date(t0);
    expect(await t.app.notify.deliverDue(now1)).toEqual({ sent: 0, failed: 0, retried: 1 });
    let [row] = await outbox(channel.id);
    expect(row).toMatchObject({ status: 'pending', attempts: 1 });
    expect(row!.last_error).toMatch(/ECONNREFUSED|fetch failed/);
    expect(row!.last_attempt_at!.getTime()).toBe(t0);
    let delay = row!.next_attempt_at.getTime() - t0;
    expect(delay).toBeGreaterThanOrEqual(24_000);
    expect(delay).toBeLessThanOrEqual(36_000);
    // Not due yet: nothing happens.
    expect(await t.app.notify.deliverDue(new Date(t0 + 1000))).toEqual({ sent: 0, failed: 0, retried: 0 });

    // 2: up but failing with 500 (echoing the secret path) → retry in 60 s ± 20 %.
    const down = await startReceiver(port);
    try {
      down.respond = (req) => ({ status: 500, body: `internal error at ${req.path} secret=${WEBHOOK_SECRET}` });
      const now2 = new Date(t0 + HOUR);
      expect(await t.app.notify.deliverDue(now2)).toEqual({ sent: 0, failed: 0, retried: 1 });
      [row] = await outbox(channel.id);
      expect(row).toMatchObject({ status: 'pending', attempts: 2 });
      expect(row!.last_error).toContain('HTTP 500');
      expect(row!.last_error).not.toContain('tok-s3cr3t-path');
      expect(row!.last_error).not.toContain(WEBHOOK_SECRET);
      delay = row!.next_attempt_at.getTime() - now2.getTime();
      expect(delay).toBeGreaterThanOrEqual(48_000);
      expect(delay).toBeLessThanOrEqual(72_000);

      // 3: back → sent.
      down.respond = () => ({ status: 204 });
      expect(await t.app.notify.deliverDue(new Date(t0 + 2 * HOUR))).toEqual({ sent: 1, failed: 0, retried: 0 });
      [row] = await outbox(channel.id);
      expect(row).toMatchObject({ status: 'sent', attempts: 3, last_error: null });
      expect(down.received).toHaveLength(2);
      expect(new Set(down.received.map((r) => r.headers['x-sentineliq-delivery']))).toEqual(new Set([row!.id]));
      // Every attempt carries the same body, signed afresh.
      expect(down.received[0]!.body).toBe(down.received[1]!.body);
      expect(down.received.every((r) => verifySignature(WEBHOOK_SECRET, r.headers, r.body))).toBe(true);

      const shown = (await api('GET', `${ws.id}/notification-channels/${channel.id}/deliveries`, owner)).body;
      expect(shown).not.toContain('tok-s3cr3t-path');
      expect(shown).not.toContain(WEBHOOK_SECRET);
    } finally {
      await down.close();
    }
  });

  it.skipIf(!enabled)('honours Retry-After on 429 and gives up after the maximum attempts', async () => {
    const channel = await webhookChannel('/limited');
    const service = new NotifyService(t.app.platform, { maxAttempts: 2 });
    await enqueue(alertFor(ws.id), service);
    receiver.respond = () => ({ status: 429, headers: { 'retry-after': '120' }, body: 'slow down' });
    const t0 = Date.now();
    expect(await service.deliverDue(new Date(t0))).toEqual({ sent: 0, failed: 0, retried: 1 });
    let [row] = await outbox(channel.id);
    expect(row!.next_attempt_at.getTime() - t0).toBe(120_000);
    expect(row!.last_error).toContain('HTTP 429');

    receiver.respond = () => ({ status: 503 });
    expect(await service.deliverDue(new Date(t0 + HOUR))).toEqual({ sent: 0, failed: 1, retried: 0 });
    [row] = await outbox(channel.id);
    expect(row).toMatchObject({ status: 'failed', attempts: 2 });
    expect(await service.deliverDue(new Date(t0 + 10 * HOUR))).toEqual({ sent: 0, failed: 0, retried: 0 });
    const failed = (await api('GET', `${ws.id}/notification-channels/${channel.id}/deliveries?status=failed`, owner)).json().deliveries;
    expect(failed).toEqual([expect.objectContaining({ status: 'failed', attempts: 2, maxAttempts: 2, lastStatusCode: 503, nextAttemptAt: null })]);
  });

  it.skipIf(!enabled)('two workers racing deliver every notification exactly once', async () => {
    await webhookChannel('/race');
    await webhookChannel('/race2');
    receiver.respond = () => ({ status: 200, delayMs: 20 });
    for (let i = 0; i < 15; i++) await enqueue(alertFor(ws.id, { ruleId: `rule-${i}` }));
    // A second "process": its own connection pool on PostgreSQL (PGlite is one connection by design).
    let otherDb: Database | undefined;
    if (postgres) otherDb = await createDatabase({ database: t.app.platform.config.database, dataDir: t.app.platform.config.dataDir });
    try {
      const a = new NotifyService(t.app.platform, { batchSize: 7, concurrency: 4 });
      const b = new NotifyService(otherDb ? { ...t.app.platform, db: otherDb } : t.app.platform, { batchSize: 7, concurrency: 4 });
      const results = await Promise.all([a.deliverDue(), b.deliverDue(), a.deliverDue(), b.deliverDue()]);
      expect(results.reduce((sum, r) => sum + r.sent, 0)).toBe(30);
      expect(results.every((r) => r.failed === 0 && r.retried === 0)).toBe(true);
    } finally {
      await otherDb?.close();
    }
    const ids = receiver.received.map((r) => String(r.headers['x-sentineliq-delivery']));
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
    const { rows } = await t.app.platform.db.query<{ status: string; attempts: number; n: number }>("SELECT status, attempts, count(*)::int AS n FROM notification_outbox GROUP BY status, attempts");
    expect(rows).toEqual([{ status: 'sent', attempts: 1, n: 30 }]);
  });

  it.skipIf(!enabled)('sends Slack, Discord, Teams and Telegram payloads in their shapes', async () => {
    const telegramApi = new NotifyService(t.app.platform, { telegramApiBase: `${receiver.base}/telegram` });
    const slack = await createChannel({ name: 'slack', type: 'slack', config: { url: `${receiver.base}/slack/T000/B000/XXXX` } });
    const discord = await createChannel({ name: 'discord', type: 'discord', config: { url: `${receiver.base}/discord/123/abc` } });
    const teams = await createChannel({ name: 'teams', type: 'teams', config: { url: `${receiver.base}/teams/webhookb2/abc` } });
    const telegram = await createChannel({ name: 'telegram', type: 'telegram', config: { botToken: BOT_TOKEN, chatId: '-1001234567890' } });
    receiver.respond = (req) => req.path.startsWith('/telegram') ? { status: 200, body: '{"ok":true,"result":{"message_id":1}}' } : req.path.startsWith('/discord') ? { status: 204 } : { status: 200, body: 'ok' };
    const alert = alertFor(ws.id, { ruleTitle: 'Suspicious <script> & "quotes" @everyone', severity: 'critical' });
    expect(await enqueue(alert, telegramApi)).toBe(4);
    expect(await telegramApi.deliverDue()).toEqual({ sent: 4, failed: 0, retried: 0 });
    const byPath = (prefix: string) => {
      const found = receiver.received.find((r) => r.path.startsWith(prefix));
      expect(found, prefix).toBeDefined();
      return { ...found!, json: JSON.parse(found!.body) };
    };

    const s = byPath('/slack/T000/B000/XXXX');
    expect(s.json.text).toContain('CRITICAL: Suspicious');
    expect(s.json.blocks[0]).toMatchObject({ type: 'header', text: { type: 'plain_text' } });
    expect(s.json.blocks[1].type).toBe('section');
    expect(s.json.blocks[1].fields).toContainEqual({ type: 'mrkdwn', text: '*Rule*\nSuspicious &lt;script&gt; &amp; "quotes" @everyone' });
    expect(JSON.stringify(s.json.blocks)).toContain(`<https://siq.example.test/workspaces/${ws.id}/alerts/${alert.id}|Open in SentinelIQ>`);

    const d = byPath('/discord/123/abc');
    expect(d.json.allowed_mentions).toEqual({ parse: [] });
    expect(d.json.embeds).toHaveLength(1);
    expect(d.json.embeds[0]).toMatchObject({ color: 0xe74c3c, url: `https://siq.example.test/workspaces/${ws.id}/alerts/${alert.id}`, timestamp: alert.lastSeen });
    expect(d.json.embeds[0].title).toContain('CRITICAL: Suspicious <script>');
    expect(d.json.embeds[0].fields).toContainEqual({ name: 'Count', value: '12', inline: true });

    const m = byPath('/teams/webhookb2/abc');
    expect(m.json.type).toBe('message');
    expect(m.json.attachments[0].contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(m.json.attachments[0].content).toMatchObject({ type: 'AdaptiveCard', version: '1.4', $schema: 'http://adaptivecards.io/schemas/adaptive-card.json' });
    expect(m.json.attachments[0].content.body[1]).toMatchObject({ type: 'FactSet' });
    expect(m.json.attachments[0].content.body[1].facts).toContainEqual({ title: 'Group', value: '10.0.0.5' });
    expect(m.json.attachments[0].content.actions[0]).toMatchObject({ type: 'Action.OpenUrl', url: `https://siq.example.test/workspaces/${ws.id}/alerts/${alert.id}` });

    const g = byPath('/telegram');
    expect(g.path).toBe(`/telegram/bot${BOT_TOKEN}/sendMessage`);
    expect(g.json).toMatchObject({ chat_id: '-1001234567890', parse_mode: 'HTML', disable_web_page_preview: true });
    expect(g.json.text).toContain('CRITICAL: Suspicious &lt;script&gt; &amp; &quot;quotes&quot;');
    expect(g.json.text).not.toContain('<script>');

    for (const c of [slack, discord, teams, telegram]) expect((await outbox(c.id))[0]).toMatchObject({ status: 'sent', attempts: 1 });
  });

  it.skipIf(!enabled)('treats a Telegram answer without ok:true as a failure and keeps the bot token out of the error', async () => {
    const telegramApi = new NotifyService(t.app.platform, { telegramApiBase: `${receiver.base}/tg` });
    const channel = await createChannel({ name: 'telegram', type: 'telegram', config: { botToken: BOT_TOKEN, chatId: '@sentineliq_alerts' } });
    receiver.respond = (req) => ({ status: 400, body: `{"ok":false,"description":"Bad Request: chat not found for ${req.path}"}` });
    await enqueue(alertFor(ws.id), telegramApi);
    expect(await telegramApi.deliverDue()).toEqual({ sent: 0, failed: 0, retried: 1 });
    const [row] = await outbox(channel.id);
    expect(row!.last_error).toContain('chat not found');
    expect(row!.last_error).not.toContain(BOT_TOKEN);
    expect(row!.last_error).not.toContain(BOT_TOKEN.split(':')[1]);
  });

  it.skipIf(!enabled)('sends email through SMTP: the channel\'s own server with a password, or SMTP_URL', async () => {
    const own = await createChannel({
      name: 'mail own', type: 'email',
      config: { recipients: ['soc@example.test', 'oncall@example.test'], smtpUrl: `smtp://notifier:smtp-pa55word-xyz@127.0.0.1:${smtp.port}`, from: 'Alerts <alerts@example.test>' },
    });
    expect(own.settings).toEqual({ recipients: ['soc@example.test', 'oncall@example.test'], smtpHint: `127.0.0.1:${smtp.port}`, from: 'Alerts <alerts@example.test>' });
    const platformSmtp = await createChannel({ name: 'mail platform', type: 'email', config: { recipients: ['lead@example.test'] } });
    const before = smtp.mails.length;
    await enqueue(alertFor(ws.id));
    expect(await t.app.notify.deliverDue()).toEqual({ sent: 2, failed: 0, retried: 0 });
    const mails = smtp.mails.slice(before);
    const viaOwn = mails.find((m) => m.user === 'notifier');
    const viaPlatform = mails.find((m) => m.user === undefined);
    expect(viaOwn).toMatchObject({ from: 'alerts@example.test', to: ['soc@example.test', 'oncall@example.test'] });
    expect(viaOwn!.data).toContain('Subject: [SentinelIQ] HIGH: SSH brute force');
    expect(viaOwn!.data).toContain('Group: 10.0.0.5');
    expect(viaOwn!.data).toMatch(/X-SentinelIQ-Delivery: [0-9a-f-]{36}/i);
    expect(viaPlatform).toMatchObject({ from: 'siq@example.test', to: ['lead@example.test'] });
    expect((await outbox(platformSmtp.id))[0]).toMatchObject({ status: 'sent' });

    // A wrong password is a failed attempt whose error names no password.
    await api('PATCH', `${ws.id}/notification-channels/${own.id}`, owner, { config: { smtpUrl: `smtp://notifier:wrong-pa55word-abc@127.0.0.1:${smtp.port}` } });
    await enqueue(alertFor(ws.id));
    expect(await t.app.notify.deliverDue()).toMatchObject({ sent: 1, retried: 1 });
    const failed = (await outbox(own.id)).find((r) => r.status === 'pending')!;
    expect(failed.last_error).toContain('SMTP');
    expect(failed.last_error).not.toContain('wrong-pa55word-abc');
  });

  it.skipIf(!enabled)('stores secrets encrypted and never returns them', async () => {
    const secrets = [WEBHOOK_SECRET, 'T000/B000/slack-secret-part', BOT_TOKEN, 'smtp-pa55word-xyz'];
    const created = [
      await createChannel({ name: 'hook', type: 'webhook', config: { url: `${receiver.base}/hook`, secret: WEBHOOK_SECRET } }),
      await createChannel({ name: 'slack', type: 'slack', config: { url: `${receiver.base}/services/T000/B000/slack-secret-part` } }),
      await createChannel({ name: 'tg', type: 'telegram', config: { botToken: BOT_TOKEN, chatId: '-100555' } }),
      await createChannel({ name: 'mail', type: 'email', config: { recipients: ['a@example.test'], smtpUrl: `smtp://notifier:smtp-pa55word-xyz@127.0.0.1:${smtp.port}` } }),
    ];
    const responses = [JSON.stringify(created)];
    responses.push((await api('GET', `${ws.id}/notification-channels`, owner)).body);
    for (const c of created) responses.push((await api('GET', `${ws.id}/notification-channels/${c.id}`, owner)).body);
    responses.push((await api('PATCH', `${ws.id}/notification-channels/${created[0]!.id}`, owner, { name: 'renamed', config: { secret: 'whsec-rotated-0123456789' } })).body);
    for (const body of responses) for (const secret of [...secrets, 'whsec-rotated-0123456789']) expect(body).not.toContain(secret);
    expect(created[0]).toMatchObject({ secretSet: true, settings: { urlHint: receiver.base } });
    expect(created[1]).toMatchObject({ secretSet: true, settings: { urlHint: receiver.base } });
    expect(created[2]).toMatchObject({ secretSet: true, settings: { chatId: '-100555' } });

    const { rows } = await t.app.platform.db.query<{ secret_ciphertext: string; secret_key_id: string }>('SELECT * FROM notification_channels WHERE workspace_id = $1', [ws.id]);
    expect(rows).toHaveLength(4);
    const raw = JSON.stringify(rows);
    for (const secret of [...secrets, 'whsec-rotated-0123456789', 'slack-secret-part', '/hook']) expect(raw).not.toContain(secret);
    expect(rows.every((r) => /^k1-[0-9a-f]{16}$/.test(r.secret_key_id) && r.secret_ciphertext.length > 20)).toBe(true);
    const audit = JSON.stringify((await t.app.platform.db.query('SELECT * FROM audit_logs WHERE workspace_id = $1', [ws.id])).rows);
    for (const secret of [...secrets, 'whsec-rotated-0123456789']) expect(audit).not.toContain(secret);

    // PATCH without the URL kept it; the new signing secret is the one used.
    await enqueue(alertFor(ws.id, { severity: 'critical' }));
    await t.app.notify.deliverDue();
    const hook = receiver.received.find((r) => r.path === '/hook');
    expect(hook).toBeDefined();
    expect(verifySignature('whsec-rotated-0123456789', hook!.headers, hook!.body)).toBe(true);
  });

  it.skipIf(!enabled)('selects channels by severity, rule and tag filters, and skips disabled channels', async () => {
    const any = await webhookChannel('/any');
    const high = await webhookChannel('/high', { minSeverity: 'high' });
    const rule = await webhookChannel('/rule', { ruleIds: ['rule-a'], minSeverity: 'informational' });
    const tag = await webhookChannel('/tag', { tags: ['attack.t1059'] });
    const off = await webhookChannel('/off', { enabled: false });
    const selected = async (alert: AlertNotice) => {
      await enqueue(alert);
      const { rows } = await t.app.platform.db.query<{ channel_id: string }>('SELECT channel_id FROM notification_outbox WHERE alert_id = $1', [alert.id]);
      return new Set(rows.map((r) => r.channel_id));
    };
    expect(await selected(alertFor(ws.id, { severity: 'medium', ruleId: 'rule-b', tags: [] }))).toEqual(new Set([any.id]));
    expect(await selected(alertFor(ws.id, { severity: 'critical', ruleId: 'rule-b', tags: [] }))).toEqual(new Set([any.id, high.id]));
    expect(await selected(alertFor(ws.id, { severity: 'informational', ruleId: 'rule-a', tags: [] }))).toEqual(new Set([rule.id]));
    expect(await selected(alertFor(ws.id, { severity: 'low', ruleId: 'rule-b', tags: ['attack.t1059.001'] }))).toEqual(new Set([any.id, tag.id]));
    // Filters change through PATCH.
    expect((await api('PATCH', `${ws.id}/notification-channels/${off.id}`, owner, { enabled: true, minSeverity: 'critical' })).statusCode).toBe(200);
    expect(await selected(alertFor(ws.id, { severity: 'critical', ruleId: 'rule-b', tags: [] }))).toEqual(new Set([any.id, high.id, off.id]));
  });

  it.skipIf(!enabled)('queues a test notification through the API and shows its delivery', async () => {
    const channel = await webhookChannel('/test-hook', { minSeverity: 'critical' });
    const res = await api('POST', `${ws.id}/notification-channels/${channel.id}/test`, owner);
    expect(res.statusCode).toBe(202);
    const { deliveryId } = res.json();
    expect(await t.app.notify.deliverDue()).toEqual({ sent: 1, failed: 0, retried: 0 });
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0]!.headers['x-sentineliq-event']).toBe('notification.test');
    expect(receiver.received[0]!.headers['x-sentineliq-delivery']).toBe(deliveryId);
    expect(verifySignature(WEBHOOK_SECRET, receiver.received[0]!.headers, receiver.received[0]!.body)).toBe(true);
    const deliveries = (await api('GET', `${ws.id}/notification-channels/${channel.id}/deliveries`, owner)).json().deliveries;
    expect(deliveries).toEqual([expect.objectContaining({ id: deliveryId, kind: 'test', status: 'sent', alertId: null })]);
  });

  it.skipIf(!enabled)('the scheduled worker delivers what is due', async () => {
    await webhookChannel('/scheduled');
    await enqueue(alertFor(ws.id));
    const job = startNotificationWorker(t.app.platform, t.app.notify, 60_000);
    try {
      const run = await job.runNow();
      expect(run).toMatchObject({ job: 'notification-delivery', ok: true, result: { sent: 1, failed: 0, retried: 0 } });
      expect(receiver.received.map((r) => r.path)).toEqual(['/scheduled']);
    } finally {
      job.stop();
    }
  });

  it.skipIf(!enabled)('rejects invalid settings with SIQ_NOTIFY_CHANNEL_INVALID', async () => {
    const cases = [
      { name: 'x', type: 'slack', config: { url: 'http://hooks.slack.com/services/x' } },
      { name: 'x', type: 'webhook', config: { url: `${receiver.base}/x` } },
      { name: 'x', type: 'telegram', config: { botToken: 'nope', chatId: '1' } },
      { name: 'x', type: 'discord', config: { url: 'https://discord.com/api/webhooks/1/x', recipients: ['a@example.test'] } },
    ];
    for (const body of cases) {
      const res = await api('POST', `${ws.id}/notification-channels`, owner, body);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error.code).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
    }
    const channel = await webhookChannel();
    const bad = await api('PATCH', `${ws.id}/notification-channels/${channel.id}`, owner, { config: { url: 'http://example.com/x' } });
    expect(bad.json().error.code).toBe('SIQ_NOTIFY_CHANNEL_INVALID');
  });

  it.skipIf(!enabled)('lets analysts read but not manage, and refuses other workspaces', async () => {
    const channel = await webhookChannel();
    expect((await api('GET', `${ws.id}/notification-channels`, analyst)).statusCode).toBe(200);
    expect((await api('GET', `${ws.id}/notification-channels/${channel.id}/deliveries`, analyst)).statusCode).toBe(200);
    expect((await api('POST', `${ws.id}/notification-channels`, analyst, { name: 'x', type: 'slack', config: { url: 'https://hooks.slack.com/x' } })).statusCode).toBe(403);
    expect((await api('POST', `${ws.id}/notification-channels/${channel.id}/test`, analyst)).statusCode).toBe(403);
    expect((await api('DELETE', `${ws.id}/notification-channels/${channel.id}`, analyst)).statusCode).toBe(403);

    // An outsider: not a member of ws, and the channel is not in their own workspace.
    for (const [method, path] of [['GET', ''], ['PATCH', ''], ['DELETE', ''], ['POST', '/test'], ['GET', '/deliveries']] as const) {
      const payload = method === 'PATCH' ? { name: 'stolen' } : undefined;
      expect((await api(method, `${ws.id}/notification-channels/${channel.id}${path}`, outsider, payload)).statusCode).toBe(404);
      expect((await api(method, `${otherWs.id}/notification-channels/${channel.id}${path}`, outsider, payload)).statusCode).toBe(404);
    }
    expect((await api('GET', `${otherWs.id}/notification-channels`, outsider)).json().channels).toEqual([]);
    expect((await api('GET', `${ws.id}/notification-channels/${channel.id}`, owner)).json().name).toBe('SOAR');

    // Row-level security: enqueueing an alert of ws inside a transaction scoped to another workspace writes nothing.
    await expect(withWorkspace(t.app.platform.db, otherWs.id, (tx) => t.app.notify.enqueueForAlert(tx, alertFor(ws.id)))).resolves.toBe(0);
    await expect(withWorkspace(t.app.platform.db, otherWs.id, (tx) => tx.query('SELECT id FROM notification_channels'))).resolves.toMatchObject({ rows: [] });
    expect(await withWorkspace(t.app.platform.db, ws.id, (tx) => t.app.notify.enqueueForAlert(tx, alertFor(ws.id)))).toBe(1);
  });
});
