import { createHmac } from 'node:crypto';
import nodemailer from 'nodemailer';
import { SiqError } from '../../errors.js';
import type { AlertNotice, Severity } from '../alerts/types.js';

/**
 * Channel types: what each one needs (validation, secret vs. plain settings), what it sends
 * (payload rendering) and how (HTTP via global fetch with a timeout, or SMTP via nodemailer).
 * Pure apart from the network: the outbox and the service decide when and whether to send.
 */
export const CHANNEL_TYPES = ['webhook', 'slack', 'discord', 'teams', 'telegram', 'email'] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

/** The channel configuration as the API accepts it: secrets and plain settings in one object. */
export interface ChannelConfigInput {
  /** webhook, slack, discord, teams: where to POST (secret: such URLs carry their credential). */
  url?: string;
  /** webhook: the HMAC-SHA256 signing secret (secret). */
  secret?: string;
  /** telegram: the bot token (secret). */
  botToken?: string;
  /** telegram: the chat id (`-100…`, `12345`) or `@channelname`. */
  chatId?: string;
  /** email: who receives the alerts. */
  recipients?: string[];
  /** email: a channel-specific SMTP server (`smtp://user:pass@host:587`, secret); null/absent uses SMTP_URL. */
  smtpUrl?: string | null;
  /** email: sender address; null/absent uses SMTP_FROM. */
  from?: string | null;
}

/** The encrypted part of a channel. */
export interface ChannelSecrets {
  url?: string;
  secret?: string;
  botToken?: string;
  smtpUrl?: string;
}

/** The plain part of a channel, safe to show. */
export interface ChannelSettings {
  /** Scheme and host of the secret URL, e.g. `https://hooks.slack.com`. */
  urlHint?: string;
  chatId?: string;
  recipients?: string[];
  from?: string;
  /** Host of the channel's own SMTP server. */
  smtpHint?: string;
}

export interface ValidationContext {
  production: boolean;
  /** Whether the platform has SMTP_URL (email channels without their own smtpUrl need it). */
  platformSmtp: boolean;
}

const CONFIG_FIELDS: Record<ChannelType, { required: Array<keyof ChannelConfigInput>; optional: Array<keyof ChannelConfigInput> }> = {
  webhook: { required: ['url', 'secret'], optional: [] },
  slack: { required: ['url'], optional: [] },
  discord: { required: ['url'], optional: [] },
  teams: { required: ['url'], optional: [] },
  telegram: { required: ['botToken', 'chatId'], optional: [] },
  email: { required: ['recipients'], optional: ['smtpUrl', 'from'] },
};

const EMAIL = /^[^\s@<>,;"]+@[^\s@<>,;"]+\.[^\s@<>,;"]+$/;
const BOT_TOKEN = /^\d{3,20}:[A-Za-z0-9_-]{20,100}$/;
const CHAT_ID = /^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$/;

/** localhost, *.localhost, 127.0.0.0/8 and ::1. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * HTTPS always; plain HTTP only to a loopback host (a local relay, or a receiver in tests), and in
 * production only for the generic webhook type.
 */
function urlProblem(field: string, value: string, type: ChannelType, ctx: ValidationContext): string | undefined {
  if (value.length > 2048) return `${field} is longer than 2048 characters`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `${field} is not a valid URL`;
  }
  if (url.username || url.password) return `${field} must not contain user credentials`;
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname) && (type === 'webhook' || !ctx.production)) return undefined;
  return `${field} must be an https:// URL (http:// is accepted only for localhost/127.0.0.1/::1${ctx.production ? ' on webhook channels' : ''})`;
}

export function urlHint(value: string): string {
  const url = new URL(value);
  return `${url.protocol}//${url.host}`;
}

/**
 * Checks a channel's configuration for its type and splits it into the encrypted and the plain
 * part. With `existing` (an update), fields not given keep their stored values, so secrets are
 * replaced only when given. Throws SIQ_NOTIFY_CHANNEL_INVALID listing every problem.
 */
export function resolveChannelConfig(
  type: ChannelType,
  input: ChannelConfigInput,
  ctx: ValidationContext,
  existing?: { secrets: ChannelSecrets; settings: ChannelSettings },
): { secrets: ChannelSecrets; settings: ChannelSettings } {
  const problems: string[] = [];
  const fields = CONFIG_FIELDS[type];
  const allowed = new Set<string>([...fields.required, ...fields.optional]);
  for (const key of Object.keys(input)) {
    if ((input as Record<string, unknown>)[key] !== undefined && !allowed.has(key)) problems.push(`${key} is not a setting of ${type} channels`);
  }
  const secrets: ChannelSecrets = { ...(existing?.secrets ?? {}) };
  const settings: ChannelSettings = { ...(existing?.settings ?? {}) };

  if (input.url !== undefined) {
    const problem = urlProblem('url', input.url, type, ctx);
    if (problem) problems.push(problem);
    else {
      secrets.url = input.url;
      settings.urlHint = urlHint(input.url);
    }
  }
  if (input.secret !== undefined) {
    if (input.secret.length < 16 || input.secret.length > 256) problems.push('secret must be 16 to 256 characters');
    else secrets.secret = input.secret;
  }
  if (input.botToken !== undefined) {
    if (!BOT_TOKEN.test(input.botToken)) problems.push('botToken does not look like a Telegram bot token (`123456:ABC…`)');
    else secrets.botToken = input.botToken;
  }
  if (input.chatId !== undefined) {
    if (!CHAT_ID.test(input.chatId)) problems.push('chatId must be a numeric chat id (`-1001234567890`) or `@channelname`');
    else settings.chatId = input.chatId;
  }
  if (input.recipients !== undefined) {
    const recipients = [...new Set(input.recipients.map((r) => r.trim().toLowerCase()))];
    const bad = recipients.filter((r) => !EMAIL.test(r) || r.length > 320);
    if (bad.length > 0) problems.push(`recipients: not an email address: ${bad.slice(0, 5).join(', ')}`);
    else if (recipients.length < 1 || recipients.length > 50) problems.push('recipients must list 1 to 50 addresses');
    else settings.recipients = recipients;
  }
  if (input.smtpUrl === null) {
    delete secrets.smtpUrl;
    delete settings.smtpHint;
  } else if (input.smtpUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(input.smtpUrl);
    } catch {
      problems.push('smtpUrl is not a valid URL');
    }
    if (url && url.protocol !== 'smtp:' && url.protocol !== 'smtps:') problems.push('smtpUrl must start with smtp:// or smtps://');
    else if (url) {
      secrets.smtpUrl = input.smtpUrl;
      settings.smtpHint = url.host;
    }
  }
  if (input.from === null) delete settings.from;
  else if (input.from !== undefined) {
    if (/[\r\n]/.test(input.from) || input.from.length > 320 || !input.from.includes('@')) problems.push('from must be one sender address (`Name <alerts@example.com>`)');
    else settings.from = input.from;
  }

  for (const field of fields.required) {
    const present = field === 'chatId' || field === 'recipients' ? settings[field] !== undefined : secrets[field as keyof ChannelSecrets] !== undefined;
    if (!present && !problems.some((p) => p.startsWith(field))) problems.push(`${field} is required for ${type} channels`);
  }
  if (type === 'email' && !secrets.smtpUrl && !ctx.platformSmtp) problems.push('no SMTP server: set SMTP_URL for the platform or give this channel an smtpUrl');
  if (problems.length > 0) throw new SiqError('SIQ_NOTIFY_CHANNEL_INVALID', `Invalid ${type} channel: ${problems.join('; ')}.`, { details: problems });
  return { secrets, settings };
}

// --- what is sent

/** One delivery: the alert (or a test), and the ids a receiver needs. */
export interface Notice {
  kind: 'alert' | 'test';
  deliveryId: string;
  channelId: string;
  alert: AlertNotice;
  /** Where the alert can be opened. */
  link: string;
}

const SEVERITY_STYLE: Record<Severity, { emoji: string; color: number; teams: string }> = {
  informational: { emoji: '⚪', color: 0x95a5a6, teams: 'Default' },
  low: { emoji: '🔵', color: 0x3498db, teams: 'Accent' },
  medium: { emoji: '🟡', color: 0xf1c40f, teams: 'Warning' },
  high: { emoji: '🟠', color: 0xe67e22, teams: 'Attention' },
  critical: { emoji: '🔴', color: 0xe74c3c, teams: 'Attention' },
};

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function title(notice: Notice): string {
  const a = notice.alert;
  if (notice.kind === 'test') return 'SentinelIQ test notification';
  return truncate(`${a.severity.toUpperCase()}: ${a.ruleTitle}`.replace(/[\r\n]+/g, ' '), 200);
}

/** The facts every channel shows, in order. */
export function facts(notice: Notice): Array<[string, string]> {
  const a = notice.alert;
  if (notice.kind === 'test') return [['Channel', notice.channelId], ['Result', 'If you can read this, the channel works.']];
  const out: Array<[string, string]> = [
    ['Severity', a.severity],
    ['Rule', truncate(a.ruleTitle, 200)],
    ['Count', String(a.count)],
    ['First seen', a.firstSeen],
    ['Last seen', a.lastSeen],
    ['Status', a.status],
  ];
  if (a.groupKey) out.splice(2, 0, ['Group', truncate(a.groupKey, 200)]);
  if (a.tags.length > 0) out.push(['Tags', truncate(a.tags.join(', '), 300)]);
  return out;
}

const escapeSlack = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escapeHtml = (s: string) => escapeSlack(s).replace(/"/g, '&quot;');

/** Generic webhook body (JSON); identical on every retry of a delivery. */
export function webhookBody(notice: Notice): string {
  return JSON.stringify({
    event: notice.kind === 'test' ? 'notification.test' : 'alert.created',
    deliveryId: notice.deliveryId,
    workspaceId: notice.alert.workspaceId,
    channelId: notice.channelId,
    alert: notice.alert,
    link: notice.link,
  });
}

/** `sha256=<hex>` of HMAC-SHA256(secret, `<timestamp>.<body>`), as sent in X-SentinelIQ-Signature. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function slackPayload(notice: Notice): unknown {
  const style = SEVERITY_STYLE[notice.alert.severity];
  const heading = `${notice.kind === 'test' ? '🔔' : style.emoji} ${title(notice)}`;
  return {
    text: heading,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: truncate(heading, 150), emoji: true } },
      { type: 'section', fields: facts(notice).slice(0, 10).map(([k, v]) => ({ type: 'mrkdwn', text: truncate(`*${k}*\n${escapeSlack(v)}`, 2000) })) },
      { type: 'section', text: { type: 'mrkdwn', text: `<${notice.link}|Open in SentinelIQ>` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `SentinelIQ · delivery ${notice.deliveryId}` }] },
    ],
  };
}

export function discordPayload(notice: Notice): unknown {
  const style = SEVERITY_STYLE[notice.alert.severity];
  return {
    username: 'SentinelIQ',
    // Rule titles and group keys are data: never let them ping @everyone or roles.
    allowed_mentions: { parse: [] },
    embeds: [
      {
        title: truncate(`${notice.kind === 'test' ? '🔔' : style.emoji} ${title(notice)}`, 256),
        url: notice.link,
        color: style.color,
        fields: facts(notice).slice(0, 25).map(([name, value]) => ({ name, value: truncate(value, 1024), inline: name !== 'Rule' && name !== 'Tags' && name !== 'Result' })),
        timestamp: notice.kind === 'test' ? undefined : notice.alert.lastSeen,
        footer: { text: `SentinelIQ · delivery ${notice.deliveryId}` },
      },
    ],
  };
}

/** A Microsoft Teams message carrying one Adaptive Card (incoming webhooks and Workflows accept this shape). */
export function teamsPayload(notice: Notice): unknown {
  const style = SEVERITY_STYLE[notice.alert.severity];
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          msteams: { width: 'Full' },
          body: [
            { type: 'TextBlock', text: title(notice), weight: 'Bolder', size: 'Medium', wrap: true, color: notice.kind === 'test' ? 'Default' : style.teams },
            { type: 'FactSet', facts: facts(notice).map(([t, value]) => ({ title: t, value })) },
            { type: 'TextBlock', text: `delivery ${notice.deliveryId}`, isSubtle: true, size: 'Small', wrap: true },
          ],
          actions: [{ type: 'Action.OpenUrl', title: 'Open in SentinelIQ', url: notice.link }],
        },
      },
    ],
  };
}

export function telegramPayload(notice: Notice, chatId: string): unknown {
  const style = SEVERITY_STYLE[notice.alert.severity];
  const lines = [
    `<b>${notice.kind === 'test' ? '🔔' : style.emoji} ${escapeHtml(title(notice))}</b>`,
    ...facts(notice).map(([k, v]) => `<b>${escapeHtml(k)}:</b> ${escapeHtml(v)}`),
    `<a href="${escapeHtml(notice.link)}">Open in SentinelIQ</a>`,
  ];
  return { chat_id: chatId, text: truncate(lines.join('\n'), 4000), parse_mode: 'HTML', disable_web_page_preview: true };
}

export function emailMessage(notice: Notice): { subject: string; text: string } {
  const body = [
    notice.kind === 'test' ? 'This is a test notification from SentinelIQ.' : `SentinelIQ raised an alert in workspace ${notice.alert.workspaceId}.`,
    '',
    ...facts(notice).map(([k, v]) => `${k}: ${v}`),
    '',
    `Open: ${notice.link}`,
    '',
    `Delivery ${notice.deliveryId}`,
  ];
  return { subject: truncate(`[SentinelIQ] ${title(notice)}`.replace(/[\r\n]+/g, ' '), 200), text: body.join('\n') };
}

// --- how it is sent

/** A failed attempt: a message safe to store (the caller also scrubs secrets), and retry hints. */
export class DeliveryFailure extends Error {
  readonly statusCode: number | undefined;
  /** From Retry-After (429/503) or Telegram's retry_after. */
  readonly retryAfterMs: number | undefined;
  /** Retrying cannot help (e.g. the secret cannot be decrypted). */
  readonly permanent: boolean;

  constructor(message: string, options: { statusCode?: number; retryAfterMs?: number; permanent?: boolean } = {}) {
    super(message);
    this.name = 'DeliveryFailure';
    this.statusCode = options.statusCode;
    this.retryAfterMs = options.retryAfterMs;
    this.permanent = options.permanent ?? false;
  }
}

export interface SendContext {
  timeoutMs: number;
  telegramApiBase: string;
  userAgent: string;
  /** The platform's SMTP_URL and SMTP_FROM. */
  smtp: { url?: string; from: string };
  now: Date;
}

export interface ResolvedChannel {
  id: string;
  type: ChannelType;
  settings: ChannelSettings;
  secrets: ChannelSecrets;
}

/** Parses Retry-After (seconds or an HTTP date) into milliseconds from `now`. */
export function parseRetryAfter(value: string | null, now: Date): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}

async function readSnippet(res: Response, max = 300): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } catch {
    // a body cut short still leaves the status to report
  } finally {
    void reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8').replace(/\s+/g, ' ').trim();
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${timeoutMs / 1000} s`;
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `${e.message} (${cause})` : e.message;
}

/** POSTs JSON; a 2xx answer is success, anything else (including redirects, which are not followed) a failure. */
async function postJson(url: string, body: string, headers: Record<string, string>, ctx: SendContext): Promise<{ status: number; text: string }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'user-agent': ctx.userAgent, ...headers },
      redirect: 'manual',
      signal: AbortSignal.timeout(ctx.timeoutMs),
    });
  } catch (err) {
    throw new DeliveryFailure(describeFetchError(err, ctx.timeoutMs));
  }
  const text = await readSnippet(res);
  if (res.status >= 200 && res.status < 300) return { status: res.status, text };
  let retryAfterMs = res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers.get('retry-after'), ctx.now) : undefined;
  if (retryAfterMs === undefined && res.status === 429) {
    const telegram = /"retry_after"\s*:\s*(\d+)/.exec(text);
    if (telegram) retryAfterMs = Number(telegram[1]) * 1000;
  }
  throw new DeliveryFailure(`HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`, { statusCode: res.status, retryAfterMs });
}

/** Sends one notice through one channel. Resolves with the receiver's status code; throws DeliveryFailure. */
export async function send(channel: ResolvedChannel, notice: Notice, ctx: SendContext): Promise<{ statusCode?: number }> {
  const { secrets, settings } = channel;
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new DeliveryFailure(`the channel has no ${what}`, { permanent: true });
    return value;
  };
  switch (channel.type) {
    case 'webhook': {
      const body = webhookBody(notice);
      const timestamp = Math.floor(ctx.now.getTime() / 1000);
      const res = await postJson(need(secrets.url, 'url'), body, {
        'x-sentineliq-event': notice.kind === 'test' ? 'notification.test' : 'alert.created',
        'x-sentineliq-delivery': notice.deliveryId,
        'x-sentineliq-timestamp': String(timestamp),
        'x-sentineliq-signature': signWebhook(need(secrets.secret, 'signing secret'), timestamp, body),
      }, ctx);
      return { statusCode: res.status };
    }
    case 'slack':
      return { statusCode: (await postJson(need(secrets.url, 'url'), JSON.stringify(slackPayload(notice)), {}, ctx)).status };
    case 'discord':
      return { statusCode: (await postJson(need(secrets.url, 'url'), JSON.stringify(discordPayload(notice)), {}, ctx)).status };
    case 'teams':
      return { statusCode: (await postJson(need(secrets.url, 'url'), JSON.stringify(teamsPayload(notice)), {}, ctx)).status };
    case 'telegram': {
      const url = `${ctx.telegramApiBase.replace(/\/+$/, '')}/bot${need(secrets.botToken, 'bot token')}/sendMessage`;
      const res = await postJson(url, JSON.stringify(telegramPayload(notice, need(settings.chatId, 'chat id'))), {}, ctx);
      if (!/"ok"\s*:\s*true/.test(res.text)) throw new DeliveryFailure(`Telegram did not confirm the message: ${res.text.slice(0, 200)}`, { statusCode: res.status });
      return { statusCode: res.status };
    }
    case 'email': {
      const url = secrets.smtpUrl ?? ctx.smtp.url;
      if (!url) throw new DeliveryFailure('no SMTP server: set SMTP_URL or give the channel an smtpUrl');
      const transport = nodemailer.createTransport({ url, connectionTimeout: ctx.timeoutMs, greetingTimeout: ctx.timeoutMs, socketTimeout: ctx.timeoutMs });
      const message = emailMessage(notice);
      try {
        await transport.sendMail({ from: settings.from ?? ctx.smtp.from, to: need(settings.recipients, 'recipients'), subject: message.subject, text: message.text, headers: { 'X-SentinelIQ-Delivery': notice.deliveryId } });
      } catch (err) {
        const e = err as Error & { responseCode?: number };
        throw new DeliveryFailure(`SMTP: ${e.message}`, { statusCode: e.responseCode });
      } finally {
        transport.close();
      }
      return {};
    }
  }
}
