import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { isUuid, workspaceAccess } from '../../http/auth.js';
import { SEVERITIES, type Severity } from '../alerts/types.js';
import { OBSERVABLE_TYPES, type ObservableType } from './observables.js';
import { INCIDENT_STATUSES, TASK_STATUSES, type Actor, type CreateIncident, type IncidentFilters, type IncidentStatus, type IncidentUpdate, type TaskStatus } from './service.js';

const WorkspaceParams = Type.Object({ workspaceId: Type.String() });
const IncidentParams = Type.Object({ workspaceId: Type.String(), incidentId: Type.String() });
const Title = Type.String({ minLength: 1, maxLength: 300, pattern: '\\S' });
const Description = Type.String({ maxLength: 20_000 });
const Tags = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 50 });
const Techniques = Type.Array(Type.String({ pattern: '^[Tt]\\d{4}(\\.\\d{3})?$', description: 'ATT&CK technique id: T1059 or T1059.001' }), { maxItems: 100 });
// Null first: with type coercion on, a String branch would turn null into ''.
const NullableUser = Type.Union([Type.Null(), Type.String({ minLength: 1, maxLength: 64 })]);
const CommentText = Type.String({ minLength: 1, maxLength: 10_000, pattern: '\\S' });
const audit = (action: string, resource = 'incident') => ({ audit: { action, resource } });

export function actorOf(request: FastifyRequest): Actor {
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

interface ListQueryType { status?: string[]; severity?: string[]; assignee?: string; tag?: string; q?: string; limit?: number; cursor?: string }

/** Incidents of a workspace: create (from alerts or by hand), work them, link alerts, observables, tasks, comments, timeline. */
export async function incidentRoutes(app: FastifyInstance): Promise<void> {
  const incidents = app.incidents;

  app.post<{ Params: { workspaceId: string }; Body: CreateIncident }>(
    '/workspaces/:workspaceId/incidents',
    {
      config: audit('incident.create'),
      onRequest: workspaceAccess('incidents:create', 'incidents'),
      schema: {
        tags: ['incidents'], summary: 'Create an incident by hand or from alerts (title and severity default from the alerts; observables are extracted from their events)', params: WorkspaceParams,
        body: Type.Object({
          title: Type.Optional(Title),
          description: Type.Optional(Description),
          severity: Type.Optional(Type.Enum([...SEVERITIES])),
          alertIds: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 100 })),
          assigneeId: Type.Optional(NullableUser),
          tags: Type.Optional(Tags),
          techniques: Type.Optional(Techniques),
        }, { additionalProperties: false }),
      },
    },
    async (request, reply) => {
      const incident = await incidents.create(request.params.workspaceId, request.body, actorOf(request));
      request.audit = { resourceId: incident.id, description: `incident "${incident.title}" created`, metadata: { alertIds: incident.alertIds } };
      return reply.status(201).send(incident);
    },
  );

  app.get<{ Params: { workspaceId: string }; Querystring: ListQueryType }>(
    '/workspaces/:workspaceId/incidents',
    {
      onRequest: workspaceAccess('incidents:read', 'incidents'),
      schema: {
        tags: ['incidents'], summary: 'Incidents, newest first (page with cursor)', params: WorkspaceParams,
        querystring: Type.Object({
          status: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 10 })),
          severity: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 10 })),
          assignee: Type.Optional(Type.String({ maxLength: 64, description: 'A user id, `me`, or `none`' })),
          tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          q: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
          cursor: Type.Optional(Type.String({ maxLength: 300 })),
        }),
      },
    },
    async (request) => {
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
      const filters: IncidentFilters = {
        status: listOf<IncidentStatus>(q.status, INCIDENT_STATUSES, 'status'),
        severity: listOf<Severity>(q.severity, SEVERITIES, 'severity'),
        assigneeId, tag: q.tag, q: q.q, limit: q.limit, cursor: q.cursor,
      };
      return incidents.list(request.params.workspaceId, filters);
    },
  );

  app.get<{ Params: { workspaceId: string; incidentId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId',
    { onRequest: workspaceAccess('incidents:read', 'incidents', 'incidentId'), schema: { tags: ['incidents'], summary: 'One incident with its linked alert ids, tasks and comments', params: IncidentParams } },
    async (request) => incidents.get(request.params.workspaceId, request.params.incidentId),
  );

  app.patch<{ Params: { workspaceId: string; incidentId: string }; Body: IncidentUpdate }>(
    '/workspaces/:workspaceId/incidents/:incidentId',
    {
      config: audit('incident.update'),
      onRequest: workspaceAccess('incidents:update', 'incidents', 'incidentId'),
      schema: {
        tags: ['incidents'], summary: 'Change fields, status (see docs/incidents.md for the lifecycle) and assignee (null unassigns), all at once', params: IncidentParams,
        body: Type.Object({
          title: Type.Optional(Title),
          description: Type.Optional(Description),
          severity: Type.Optional(Type.Enum([...SEVERITIES])),
          status: Type.Optional(Type.Enum([...INCIDENT_STATUSES])),
          assigneeId: Type.Optional(NullableUser),
          tags: Type.Optional(Tags),
          techniques: Type.Optional(Techniques),
        }, { additionalProperties: false, minProperties: 1 }),
      },
    },
    async (request) => {
      const { workspaceId, incidentId } = request.params;
      const incident = await incidents.update(workspaceId, incidentId, request.body, actorOf(request));
      request.audit = { resourceId: incidentId, description: `incident "${incident.title}" updated: ${Object.keys(request.body).join(', ')}`, metadata: { status: request.body.status, assigneeId: request.body.assigneeId } };
      return incident;
    },
  );

  app.post<{ Params: { workspaceId: string; incidentId: string }; Body: { alertIds: string[] } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/alerts',
    {
      config: audit('incident.link_alerts'),
      onRequest: workspaceAccess('incidents:update', 'incidents', 'incidentId'),
      schema: { tags: ['incidents'], summary: 'Link alerts (observables are extracted from their events)', params: IncidentParams, body: Type.Object({ alertIds: Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 100 }) }, { additionalProperties: false }) },
    },
    async (request) => {
      const { workspaceId, incidentId } = request.params;
      const result = await incidents.linkAlerts(workspaceId, incidentId, request.body.alertIds, actorOf(request));
      request.audit = { resourceId: incidentId, description: `${result.linked.length} alert(s) linked`, metadata: { alertIds: result.linked } };
      return result;
    },
  );

  app.delete<{ Params: { workspaceId: string; incidentId: string; alertId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/alerts/:alertId',
    { config: audit('incident.unlink_alert'), onRequest: workspaceAccess('incidents:update', 'incidents', 'incidentId'), schema: { tags: ['incidents'], summary: 'Unlink an alert (observables only it carried go with it)' } },
    async (request) => {
      const { workspaceId, incidentId, alertId } = request.params;
      const result = await incidents.unlinkAlert(workspaceId, incidentId, alertId, actorOf(request));
      request.audit = { resourceId: incidentId, description: `alert ${alertId} unlinked`, metadata: { alertId } };
      return result;
    },
  );

  app.get<{ Params: { workspaceId: string; incidentId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/observables',
    { onRequest: workspaceAccess('observables:read', 'incidents', 'incidentId'), schema: { tags: ['incidents'], summary: 'Observables of the incident', params: IncidentParams } },
    async (request) => ({ observables: await incidents.observables(request.params.workspaceId, request.params.incidentId) }),
  );

  app.post<{ Params: { workspaceId: string; incidentId: string }; Body: { type: ObservableType; value: string; note?: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/observables',
    {
      config: audit('incident.observable_add'),
      onRequest: workspaceAccess('observables:create', 'incidents', 'incidentId'),
      schema: { tags: ['incidents'], summary: 'Add an observable by hand', params: IncidentParams, body: Type.Object({ type: Type.Enum([...OBSERVABLE_TYPES]), value: Type.String({ minLength: 1, maxLength: 2048 }), note: Type.Optional(Type.String({ maxLength: 2000 })) }, { additionalProperties: false }) },
    },
    async (request, reply) => {
      const { workspaceId, incidentId } = request.params;
      const observable = await incidents.addObservable(workspaceId, incidentId, request.body, actorOf(request));
      request.audit = { resourceId: incidentId, description: `${observable.type} observable added`, metadata: { observableId: observable.id, type: observable.type } };
      return reply.status(201).send(observable);
    },
  );

  app.get<{ Params: { workspaceId: string }; Querystring: { type?: ObservableType; value: string; limit?: number } }>(
    '/workspaces/:workspaceId/observables',
    {
      onRequest: workspaceAccess('observables:read', 'observables'),
      schema: {
        tags: ['incidents'], summary: 'Where else was this seen: incidents that have the observable', params: WorkspaceParams,
        querystring: Type.Object({ type: Type.Optional(Type.Enum([...OBSERVABLE_TYPES])), value: Type.String({ minLength: 1, maxLength: 2048 }), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }),
      },
    },
    async (request) => {
      const hits = await incidents.searchObservables(request.params.workspaceId, request.query);
      return { observables: hits, incidents: [...new Set(hits.map((h) => h.incidentId))] };
    },
  );

  app.post<{ Params: { workspaceId: string; incidentId: string }; Body: { title: string; description?: string; ownerId?: string | null; status?: TaskStatus } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/tasks',
    {
      config: audit('incident.task_create'),
      onRequest: workspaceAccess('incidents:update', 'incidents', 'incidentId'),
      schema: { tags: ['incidents'], summary: 'Add a task (owner must be a member)', params: IncidentParams, body: Type.Object({ title: Title, description: Type.Optional(Type.String({ maxLength: 10_000 })), ownerId: Type.Optional(NullableUser), status: Type.Optional(Type.Enum([...TASK_STATUSES])) }, { additionalProperties: false }) },
    },
    async (request, reply) => {
      const { workspaceId, incidentId } = request.params;
      const task = await incidents.addTask(workspaceId, incidentId, request.body, actorOf(request));
      request.audit = { resourceId: incidentId, description: `task "${task.title}" created`, metadata: { taskId: task.id } };
      return reply.status(201).send(task);
    },
  );

  app.patch<{ Params: { workspaceId: string; incidentId: string; taskId: string }; Body: { title?: string; description?: string; ownerId?: string | null; status?: TaskStatus } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/tasks/:taskId',
    {
      config: audit('incident.task_update'),
      onRequest: workspaceAccess('incidents:update', 'incidents', 'incidentId'),
      schema: { tags: ['incidents'], summary: 'Change a task (title, description, owner, status)', body: Type.Object({ title: Type.Optional(Title), description: Type.Optional(Type.String({ maxLength: 10_000 })), ownerId: Type.Optional(NullableUser), status: Type.Optional(Type.Enum([...TASK_STATUSES])) }, { additionalProperties: false, minProperties: 1 }) },
    },
    async (request) => {
      const { workspaceId, incidentId, taskId } = request.params;
      const task = await incidents.updateTask(workspaceId, incidentId, taskId, request.body, actorOf(request));
      request.audit = { resourceId: incidentId, description: `task "${task.title}" updated`, metadata: { taskId } };
      return task;
    },
  );

  app.post<{ Params: { workspaceId: string; incidentId: string }; Body: { text: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/comments',
    {
      config: audit('incident.comment'),
      onRequest: workspaceAccess('incidents:comment', 'incidents', 'incidentId'),
      schema: { tags: ['incidents'], summary: 'Comment on an incident', params: IncidentParams, body: Type.Object({ text: CommentText }, { additionalProperties: false }) },
    },
    async (request, reply) => {
      const { workspaceId, incidentId } = request.params;
      const comment = await incidents.comment(workspaceId, incidentId, request.body.text, actorOf(request));
      request.audit = { resourceId: incidentId, description: 'comment added', metadata: { commentId: comment.id } };
      return reply.status(201).send(comment);
    },
  );

  app.get<{ Params: { workspaceId: string; incidentId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/timeline',
    { onRequest: workspaceAccess('incidents:read', 'incidents', 'incidentId'), schema: { tags: ['incidents'], summary: 'Every change of the incident, oldest first (append-only)', params: IncidentParams } },
    async (request) => ({ entries: await incidents.timeline(request.params.workspaceId, request.params.incidentId) }),
  );
}
