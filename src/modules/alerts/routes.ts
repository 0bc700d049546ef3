import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { isUuid, workspaceAccess } from '../../http/auth.js';
import { ALERT_STATUSES, type Actor, type AlertFilters, type AlertStatus, type AlertUpdate } from './service.js';
import { SEVERITIES, type Severity } from './types.js';

const AlertParams = Type.Object({ workspaceId: Type.String(), alertId: Type.String() });
const WorkspaceParams = Type.Object({ workspaceId: Type.String() });
const CommentText = Type.String({ minLength: 1, maxLength: 10_000, pattern: '\\S' });
const audit = (action: string) => ({ audit: { action, resource: 'alert' } });

const ListQuery = Type.Object({
  status: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 10, description: 'Repeat or comma-separate: new, acknowledged, in_progress, resolved, false_positive' })),
  severity: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 10, description: 'Any of these severities (repeat or comma-separate)' })),
  minSeverity: Type.Optional(Type.Enum([...SEVERITIES])),
  ruleId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  assignee: Type.Optional(Type.String({ maxLength: 64, description: 'A user id, `me`, or `none` for unassigned' })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'last_seen at or after' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'last_seen before' })),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Text in the title, rule title or group key' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  cursor: Type.Optional(Type.String({ maxLength: 300 })),
});
interface ListQueryType {
  status?: string[];
  severity?: string[];
  minSeverity?: Severity;
  ruleId?: string;
  assignee?: string;
  from?: string;
  to?: string;
  q?: string;
  limit?: number;
  cursor?: string;
}

function actorOf(request: FastifyRequest): Actor {
  const auth = request.auth;
  if (auth?.kind === 'user') return { userId: auth.userId };
  if (auth?.kind === 'apikey') return { apiKeyId: auth.apiKeyId };
  return {};
}

function listOf<T extends string>(values: string[] | undefined, allowed: readonly T[], name: string): T[] | undefined {
  if (!values) return undefined;
  const items = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const wrong = items.filter((v) => !allowed.includes(v as T));
  if (wrong.length > 0) throw new SiqError('SIQ_VALIDATION', `${name} must be among ${allowed.join(', ')}; got ${wrong.join(', ')}.`);
  return items as T[];
}

function filtersOf(request: FastifyRequest<{ Querystring: ListQueryType }>): AlertFilters {
  const q = request.query;
  let assigneeId: string | null | undefined;
  if (q.assignee === 'none') assigneeId = null;
  else if (q.assignee === 'me') {
    if (request.auth?.kind !== 'user') throw new SiqError('SIQ_VALIDATION', 'assignee=me needs a signed-in user.');
    assigneeId = request.auth.userId;
  } else if (q.assignee !== undefined) {
    if (!isUuid(q.assignee)) throw new SiqError('SIQ_VALIDATION', 'assignee must be a user id, `me` or `none`.');
    assigneeId = q.assignee;
  }
  return {
    status: listOf<AlertStatus>(q.status, ALERT_STATUSES, 'status'),
    severity: listOf<Severity>(q.severity, SEVERITIES, 'severity'),
    minSeverity: q.minSeverity,
    ruleId: q.ruleId,
    assigneeId,
    from: q.from ? new Date(q.from) : undefined,
    to: q.to ? new Date(q.to) : undefined,
    q: q.q,
    limit: q.limit,
    cursor: q.cursor,
  };
}

/** Alerts of a workspace: list, read, work them (status, assignee), comment, history. */
export async function alertRoutes(app: FastifyInstance): Promise<void> {
  const alerts = app.alerts;

  app.get<{ Params: { workspaceId: string }; Querystring: ListQueryType }>(
    '/workspaces/:workspaceId/alerts',
    { onRequest: workspaceAccess('alerts:read', 'alerts'), schema: { tags: ['alerts'], summary: 'Alerts, most recently seen first (page with cursor)', params: WorkspaceParams, querystring: ListQuery } },
    async (request) => alerts.list(request.params.workspaceId, filtersOf(request)),
  );

  app.get<{ Params: { workspaceId: string; alertId: string } }>(
    '/workspaces/:workspaceId/alerts/:alertId',
    { onRequest: workspaceAccess('alerts:read', 'alerts', 'alertId'), schema: { tags: ['alerts'], summary: 'One alert with its event references and comments', params: AlertParams } },
    async (request) => alerts.get(request.params.workspaceId, request.params.alertId),
  );

  app.patch<{ Params: { workspaceId: string; alertId: string }; Body: AlertUpdate }>(
    '/workspaces/:workspaceId/alerts/:alertId',
    {
      config: audit('alert.update'),
      onRequest: workspaceAccess('alerts:update', 'alerts', 'alertId'),
      schema: {
        tags: ['alerts'], summary: 'Change status (see docs/alerts.md for the lifecycle), assignee (null unassigns), and optionally comment, all at once', params: AlertParams,
        body: Type.Object({
          status: Type.Optional(Type.Enum([...ALERT_STATUSES])),
          // Null first: with type coercion on, a String branch would turn null into ''.
          assigneeId: Type.Optional(Type.Union([Type.Null(), Type.String({ minLength: 1, maxLength: 64 })])),
          comment: Type.Optional(CommentText),
        }, { additionalProperties: false, minProperties: 1 }),
      },
    },
    async (request) => {
      const { workspaceId, alertId } = request.params;
      const alert = await alerts.update(workspaceId, alertId, request.body, actorOf(request));
      const changes = [
        request.body.status !== undefined ? `status ${alert.status}` : '',
        request.body.assigneeId !== undefined ? (alert.assigneeId ? `assigned to ${alert.assigneeId}` : 'unassigned') : '',
        request.body.comment !== undefined ? 'commented' : '',
      ].filter(Boolean);
      request.audit = { resourceId: alertId, description: `alert "${alert.title}": ${changes.join(', ')}`, metadata: { status: request.body.status, assigneeId: request.body.assigneeId } };
      return alert;
    },
  );

  app.post<{ Params: { workspaceId: string; alertId: string }; Body: { text: string } }>(
    '/workspaces/:workspaceId/alerts/:alertId/comments',
    {
      config: audit('alert.comment'),
      onRequest: workspaceAccess('alerts:comment', 'alerts', 'alertId'),
      schema: { tags: ['alerts'], summary: 'Comment on an alert', params: AlertParams, body: Type.Object({ text: CommentText }, { additionalProperties: false }) },
    },
    async (request, reply) => {
      const { workspaceId, alertId } = request.params;
      const comment = await alerts.comment(workspaceId, alertId, request.body.text, actorOf(request));
      request.audit = { resourceId: alertId, description: 'comment added', metadata: { commentId: comment.id } };
      return reply.status(201).send(comment);
    },
  );

  app.get<{ Params: { workspaceId: string; alertId: string } }>(
    '/workspaces/:workspaceId/alerts/:alertId/history',
    { onRequest: workspaceAccess('alerts:read', 'alerts', 'alertId'), schema: { tags: ['alerts'], summary: 'Every change of the alert, oldest first', params: AlertParams } },
    async (request) => ({ entries: await alerts.history(request.params.workspaceId, request.params.alertId) }),
  );
}
