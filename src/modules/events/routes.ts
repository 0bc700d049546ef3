import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { workspaceAccess } from '../../http/auth.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import { countEvents, histogram, searchEvents, topTerms } from './search.js';

const Range = {
  query: Type.Optional(Type.String({ maxLength: 10_000, description: 'Search language, e.g. `event.action:ssh_login AND NOT source.ip:10.0.0.0/8`' })),
  from: Type.String({ format: 'date-time' }),
  to: Type.String({ format: 'date-time' }),
};
type RangeBody = { query?: string; from: string; to: string };
const readOnly = { audit: false as const };

/**
 * Search over the event store: events, count, date histogram, top terms. All workspace-scoped.
 *
 * These run without the row-level-security role: under RLS PostgreSQL may not use an index
 * for operators that are not LEAKPROOF, such as full-text `@@`, so a needle search would scan
 * every row. Isolation here rests on `search.ts` putting `workspace_id = $1` first in every
 * statement it builds (there is no other way to query), behind the membership check.
 */
export async function eventRoutes(app: FastifyInstance): Promise<void> {
  const db = app.platform.db;
  const range = (workspaceId: string, body: RangeBody) => ({ workspaceId, query: body.query ?? '', from: new Date(body.from), to: new Date(body.to) });
  const access = workspaceAccess('events:read', 'events');

  app.post<{ Params: { workspaceId: string }; Body: RangeBody & { sort?: 'asc' | 'desc'; size?: number; searchAfter?: [string, string]; fields?: string[] } }>(
    '/workspaces/:workspaceId/events/search',
    {
      config: readOnly, onRequest: access,
      schema: {
        tags: ['events'], summary: 'Search events (cursor pagination with searchAfter)',
        body: Type.Object({ ...Range, sort: Type.Optional(Type.Enum(['asc', 'desc'])), size: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), searchAfter: Type.Optional(Type.Array(Type.String(), { minItems: 2, maxItems: 2 })), fields: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 100 })) }, { additionalProperties: false }),
      },
    },
    async (request) => db.transaction((tx) => searchEvents(tx, { ...range(request.params.workspaceId, request.body), sort: request.body.sort, size: request.body.size, searchAfter: request.body.searchAfter, fields: request.body.fields })),
  );

  app.post<{ Params: { workspaceId: string }; Body: RangeBody }>(
    '/workspaces/:workspaceId/events/count',
    { config: readOnly, onRequest: access, schema: { tags: ['events'], summary: 'Count matching events', body: Type.Object(Range, { additionalProperties: false }) } },
    async (request) => ({ count: await db.transaction((tx) => countEvents(tx, range(request.params.workspaceId, request.body))) }),
  );

  app.post<{ Params: { workspaceId: string }; Body: RangeBody & { maxBuckets?: number } }>(
    '/workspaces/:workspaceId/events/histogram',
    { config: readOnly, onRequest: access, schema: { tags: ['events'], summary: 'Event counts over time (bucket size chosen automatically)', body: Type.Object({ ...Range, maxBuckets: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }, { additionalProperties: false }) } },
    async (request) => db.transaction((tx) => histogram(tx, { ...range(request.params.workspaceId, request.body), maxBuckets: request.body.maxBuckets })),
  );

  app.post<{ Params: { workspaceId: string }; Body: RangeBody & { field: string; size?: number } }>(
    '/workspaces/:workspaceId/events/terms',
    { config: readOnly, onRequest: access, schema: { tags: ['events'], summary: 'Top values of a field', body: Type.Object({ ...Range, field: Type.String({ minLength: 1, maxLength: 200 }), size: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })) }, { additionalProperties: false }) } },
    async (request) => db.transaction((tx) => topTerms(tx, { ...range(request.params.workspaceId, request.body), field: request.body.field, size: request.body.size })),
  );

  app.get<{ Params: { workspaceId: string } }>(
    '/workspaces/:workspaceId/events/retention',
    { onRequest: workspaceAccess('events:read', 'events'), schema: { tags: ['events'], summary: 'How long events stay searchable in this workspace' } },
    async (request) => {
      const { rows } = await db.query<{ retention_days: number }>('SELECT retention_days FROM event_retention WHERE workspace_id = $1', [request.params.workspaceId]);
      return { days: rows[0]?.retention_days ?? app.platform.config.ingest.retentionDays, default: !rows[0] };
    },
  );

  app.put<{ Params: { workspaceId: string }; Body: { days: number } }>(
    '/workspaces/:workspaceId/events/retention',
    {
      config: { audit: { action: 'events.retention_change', resource: 'workspace' } },
      onRequest: workspaceAccess('workspace:update', 'workspace'),
      schema: { tags: ['events'], summary: 'Set how many days events stay searchable (older ones are archived, then removed)', body: Type.Object({ days: Type.Integer({ minimum: 1, maximum: 3650 }) }, { additionalProperties: false }) },
    },
    async (request) => {
      const { workspaceId } = request.params;
      await withWorkspace(db, workspaceId, (tx) => tx.query('INSERT INTO event_retention (workspace_id, retention_days) VALUES ($1, $2) ON CONFLICT (workspace_id) DO UPDATE SET retention_days = $2, updated_at = now()', [workspaceId, request.body.days]));
      request.audit = { resourceId: workspaceId, description: `event retention set to ${request.body.days} days` };
      return { days: request.body.days, default: false };
    },
  );

  app.get<{ Params: { workspaceId: string } }>(
    '/workspaces/:workspaceId/ingest/stats',
    { onRequest: workspaceAccess('ingest:read', 'ingest'), schema: { tags: ['ingest'], summary: 'Events received, stored, rejected (by reason) and dropped, per source, counted by every process since the workspace began (received = stored + rejected + dropped)' } },
    async (request) => ({ sources: await app.ingest.stats(request.params.workspaceId), queuedEvents: app.ingest.queuedEvents }),
  );
}
