import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { workspaceAccess } from '../../http/auth.js';
import { SEVERITIES } from '../alerts/types.js';
import { CHANNEL_TYPES, type ChannelConfigInput } from './channels.js';
import type { CreateChannelInput, DeliveryView, UpdateChannelInput } from './service.js';

const WorkspaceParams = Type.Object({ workspaceId: Type.String() });
const ChannelParams = Type.Object({ workspaceId: Type.String(), channelId: Type.String() });
const audit = (action: string) => ({ audit: { action, resource: 'notification_channel' } });

const Config = Type.Object(
  {
    url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'webhook, slack, discord, teams: the URL to POST to (stored encrypted, never returned)' })),
    secret: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'webhook: HMAC-SHA256 signing secret, 16+ characters (stored encrypted, never returned)' })),
    botToken: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'telegram: bot token (stored encrypted, never returned)' })),
    chatId: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'telegram: chat id or @channelname' })),
    recipients: Type.Optional(Type.Array(Type.String({ minLength: 3, maxLength: 320 }), { maxItems: 50, description: 'email: recipient addresses' })),
    smtpUrl: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 2048 }), Type.Null()], { description: 'email: own SMTP server, `smtp://user:pass@host:587` (stored encrypted); null: use SMTP_URL' })),
    from: Type.Optional(Type.Union([Type.String({ minLength: 3, maxLength: 320 }), Type.Null()], { description: 'email: sender; null: SMTP_FROM' })),
  },
  { additionalProperties: false },
);

const Filters = {
  enabled: Type.Optional(Type.Boolean()),
  minSeverity: Type.Optional(Type.Enum([...SEVERITIES], { description: 'Lowest alert severity sent (default low)' })),
  ruleIds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100, description: 'Only alerts of these rules (empty: any rule)' })),
  tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100, description: 'Only alerts with one of these tags or a tag below one (`attack.t1059` matches `attack.t1059.001`); empty: any' })),
};
const Name = Type.String({ minLength: 1, maxLength: 120, pattern: '\\S' });

/**
 * Notification channels of a workspace: CRUD, a test send, and the recent deliveries with their
 * status. Secrets go in, never out (`secretSet` and hints instead).
 */
export async function notifyRoutes(app: FastifyInstance): Promise<void> {
  const base = '/workspaces/:workspaceId/notification-channels';
  const read = workspaceAccess('notifications:read', 'notifications', 'channelId');
  const manage = workspaceAccess('notifications:manage', 'notifications', 'channelId');
  const userId = (auth: unknown) => ((auth as { kind: string }).kind === 'user' ? (auth as { userId: string }).userId : undefined);

  app.get<{ Params: { workspaceId: string } }>(
    base,
    { onRequest: read, schema: { tags: ['notifications'], summary: 'Notification channels', params: WorkspaceParams } },
    async (request) => ({ channels: await app.notify.listChannels(request.params.workspaceId) }),
  );

  app.post<{ Params: { workspaceId: string }; Body: CreateChannelInput }>(
    base,
    {
      config: audit('notification_channel.create'),
      onRequest: manage,
      schema: {
        tags: ['notifications'], summary: 'Add a channel (webhook, slack, discord, teams, telegram, email)', params: WorkspaceParams,
        body: Type.Object({ name: Name, type: Type.Enum([...CHANNEL_TYPES]), ...Filters, config: Config }, { additionalProperties: false }),
      },
    },
    async (request, reply) => {
      const channel = await app.notify.createChannel(request.params.workspaceId, request.body, userId(request.auth));
      request.audit = { resourceId: channel.id, description: `${channel.type} channel "${channel.name}" created`, metadata: { type: channel.type, minSeverity: channel.minSeverity } };
      return reply.status(201).send(channel);
    },
  );

  app.get<{ Params: { workspaceId: string; channelId: string } }>(
    `${base}/:channelId`,
    { onRequest: read, schema: { tags: ['notifications'], summary: 'One channel', params: ChannelParams } },
    async (request) => app.notify.getChannel(request.params.workspaceId, request.params.channelId),
  );

  app.patch<{ Params: { workspaceId: string; channelId: string }; Body: UpdateChannelInput & { config?: ChannelConfigInput } }>(
    `${base}/:channelId`,
    {
      config: audit('notification_channel.update'),
      onRequest: manage,
      schema: {
        tags: ['notifications'], summary: 'Change a channel (secrets are replaced only when given)', params: ChannelParams,
        body: Type.Object({ name: Type.Optional(Name), ...Filters, config: Type.Optional(Config) }, { additionalProperties: false }),
      },
    },
    async (request) => {
      const channel = await app.notify.updateChannel(request.params.workspaceId, request.params.channelId, request.body);
      const changed = Object.keys(request.body).concat(Object.keys(request.body.config ?? {}).map((k) => `config.${k}`)).filter((k) => k !== 'config');
      request.audit = { resourceId: channel.id, description: `channel "${channel.name}" changed: ${changed.join(', ') || 'nothing'}`, metadata: { changed } };
      return channel;
    },
  );

  app.delete<{ Params: { workspaceId: string; channelId: string } }>(
    `${base}/:channelId`,
    { config: audit('notification_channel.delete'), onRequest: manage, schema: { tags: ['notifications'], summary: 'Delete a channel and its delivery history', params: ChannelParams } },
    async (request, reply) => {
      const channel = await app.notify.deleteChannel(request.params.workspaceId, request.params.channelId);
      request.audit = { resourceId: channel.id, description: `${channel.type} channel "${channel.name}" deleted` };
      return reply.status(204).send();
    },
  );

  app.post<{ Params: { workspaceId: string; channelId: string } }>(
    `${base}/:channelId/test`,
    { config: audit('notification_channel.test'), onRequest: manage, schema: { tags: ['notifications'], summary: 'Queue a test notification through this channel', params: ChannelParams } },
    async (request, reply) => {
      const { deliveryId } = await app.notify.enqueueTest(request.params.workspaceId, request.params.channelId);
      request.audit = { resourceId: request.params.channelId, description: 'test notification queued', metadata: { deliveryId } };
      return reply.status(202).send({ deliveryId, status: 'pending' });
    },
  );

  app.get<{ Params: { workspaceId: string; channelId: string }; Querystring: { limit?: number; status?: DeliveryView['status'] } }>(
    `${base}/:channelId/deliveries`,
    {
      onRequest: read,
      schema: {
        tags: ['notifications'], summary: 'Recent deliveries through this channel, newest first, with status, attempts and last error', params: ChannelParams,
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })), status: Type.Optional(Type.Enum(['pending', 'sending', 'sent', 'failed'])) }, { additionalProperties: false }),
      },
    },
    async (request) => ({ deliveries: await app.notify.deliveries(request.params.workspaceId, request.params.channelId, request.query) }),
  );
}
