import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { isUuid, workspaceAccess } from '../../http/auth.js';
import { SEVERITIES, type Severity } from '../alerts/types.js';
import { readRuleZip } from './rules/import.js';
import { publicRule } from './service.js';
import type { ThresholdDefinition } from './thresholds.js';

const WorkspaceParams = Type.Object({ workspaceId: Type.String() });
const RuleParams = Type.Object({ workspaceId: Type.String(), ruleId: Type.String() });
const audit = (action: string) => ({ audit: { action, resource: 'rule' } });
const actorId = (request: FastifyRequest) => (request.auth?.kind === 'user' ? request.auth.userId : null);
const Condition = Type.Object({
  gt: Type.Optional(Type.Number()), gte: Type.Optional(Type.Number()), lt: Type.Optional(Type.Number()), lte: Type.Optional(Type.Number()), eq: Type.Optional(Type.Number()),
}, { additionalProperties: false });
const Threshold = Type.Object({
  title: Type.String({ minLength: 1, maxLength: 256 }),
  description: Type.Optional(Type.String({ maxLength: 10_000 })),
  query: Type.String({ maxLength: 10_000, description: 'Search query selecting the events that count ("*" for all)' }),
  groupBy: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 10 })),
  timespan: Type.String({ pattern: '^\\d+[smhd]$', description: 'Window length: 30s, 5m, 1h, 1d' }),
  condition: Condition,
  distinctField: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Count distinct values of this field instead of events' })),
  level: Type.Optional(Type.Enum([...SEVERITIES])),
  tags: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 50 })),
}, { additionalProperties: false });

function ruleId(id: string): string {
  if (!isUuid(id)) throw new SiqError('SIQ_NOT_FOUND', 'No such rule in this workspace.');
  return id;
}

/**
 * Detection rules per workspace: Sigma import (YAML text, several documents, or a zip of a rule
 * tree), threshold rules, enable/disable, severity override, tags, versions, `expand`
 * placeholders, and retro-hunts.
 */
export async function detectionRoutes(app: FastifyInstance): Promise<void> {
  const service = app.detection;
  // Rule archives and YAML arrive as they are; the body limit is the server's.
  app.addContentTypeParser(['application/zip', 'application/x-zip-compressed'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'], { parseAs: 'string' }, (_req, body, done) => done(null, body));
  const base = '/workspaces/:workspaceId/detection';

  app.get<{ Params: { workspaceId: string }; Querystring: { enabled?: boolean; kind?: string; tag?: string; q?: string; limit?: number; offset?: number } }>(
    `${base}/rules`,
    {
      onRequest: workspaceAccess('rules:read', 'rules'),
      schema: {
        tags: ['detection'], summary: 'List rules', params: WorkspaceParams,
        querystring: Type.Object({
          enabled: Type.Optional(Type.Boolean()), kind: Type.Optional(Type.Enum(['sigma', 'threshold'])), tag: Type.Optional(Type.String({ maxLength: 200 })),
          q: Type.Optional(Type.String({ maxLength: 200 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), offset: Type.Optional(Type.Integer({ minimum: 0 })),
        }),
      },
    },
    async (request) => service.list(request.params.workspaceId, request.query),
  );

  app.post<{ Params: { workspaceId: string }; Body: unknown }>(
    `${base}/rules`,
    {
      config: audit('rule.import'),
      onRequest: workspaceAccess('rules:create', 'rules'),
      schema: {
        tags: ['detection'], params: WorkspaceParams,
        summary: 'Import Sigma rules: a YAML body (one or more documents), a zip of rule files (application/zip), or JSON {yaml, file?}. Each invalid rule is reported on its own; the others load.',
      },
    },
    async (request, reply) => {
      const ws = request.params.workspaceId;
      const body = request.body;
      let report;
      if (Buffer.isBuffer(body)) {
        report = await service.storeImport(ws, readRuleZip(body, await service.compileContext(ws)), actorId(request));
      } else if (typeof body === 'string') {
        report = await service.importYaml(ws, 'request.yml', body, actorId(request));
      } else if (body && typeof body === 'object' && typeof (body as { yaml?: unknown }).yaml === 'string') {
        const { yaml, file } = body as { yaml: string; file?: unknown };
        report = await service.importYaml(ws, typeof file === 'string' && file ? file.slice(0, 200) : 'request.yml', yaml, actorId(request));
      } else {
        throw new SiqError('SIQ_BAD_REQUEST', 'Send Sigma YAML (Content-Type application/yaml), a zip (application/zip), or JSON {"yaml": "..."}.');
      }
      request.audit = { description: `rules imported: ${report.created} new, ${report.updated} updated, ${report.rejected.length} rejected` };
      return reply.status(report.created + report.updated + report.unchanged === 0 && report.rejected.length > 0 ? 422 : 200).send(report);
    },
  );

  app.post<{ Params: { workspaceId: string }; Body: ThresholdDefinition }>(
    `${base}/thresholds`,
    { config: audit('rule.create'), onRequest: workspaceAccess('rules:create', 'rules'), schema: { tags: ['detection'], summary: 'Create a threshold rule', params: WorkspaceParams, body: Threshold } },
    async (request, reply) => {
      const row = await service.createThreshold(request.params.workspaceId, request.body, actorId(request));
      request.audit = { resourceId: row.id, description: `threshold rule "${row.title}" created` };
      return reply.status(201).send(publicRule(row, true));
    },
  );

  app.get<{ Params: { workspaceId: string; ruleId: string } }>(
    `${base}/rules/:ruleId`,
    { onRequest: workspaceAccess('rules:read', 'rules'), schema: { tags: ['detection'], summary: 'One rule with its source', params: RuleParams } },
    async (request) => publicRule(await service.get(request.params.workspaceId, ruleId(request.params.ruleId)), true),
  );

  app.get<{ Params: { workspaceId: string; ruleId: string } }>(
    `${base}/rules/:ruleId/versions`,
    { onRequest: workspaceAccess('rules:read', 'rules'), schema: { tags: ['detection'], summary: 'Every version of a rule, newest first', params: RuleParams } },
    async (request) => ({ versions: await service.versions(request.params.workspaceId, ruleId(request.params.ruleId)) }),
  );

  app.patch<{ Params: { workspaceId: string; ruleId: string }; Body: { enabled?: boolean; severity?: Severity | null; tags?: string[]; threshold?: ThresholdDefinition } }>(
    `${base}/rules/:ruleId`,
    {
      config: audit('rule.update'),
      onRequest: workspaceAccess('rules:update', 'rules'),
      schema: {
        tags: ['detection'], summary: 'Enable/disable, override severity (null resets), replace tags, or replace a threshold definition', params: RuleParams,
        body: Type.Object({
          enabled: Type.Optional(Type.Boolean()),
          severity: Type.Optional(Type.Union([Type.Enum([...SEVERITIES]), Type.Null()])),
          tags: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 50 })),
          threshold: Type.Optional(Threshold),
        }, { additionalProperties: false, minProperties: 1 }),
      },
    },
    async (request) => {
      const row = await service.update(request.params.workspaceId, ruleId(request.params.ruleId), request.body, actorId(request));
      request.audit = { resourceId: row.id, description: `rule "${row.title}" updated` };
      return publicRule(row);
    },
  );

  app.delete<{ Params: { workspaceId: string; ruleId: string } }>(
    `${base}/rules/:ruleId`,
    { config: audit('rule.delete'), onRequest: workspaceAccess('rules:delete', 'rules'), schema: { tags: ['detection'], summary: 'Delete a rule (built-in rules can only be disabled)', params: RuleParams } },
    async (request, reply) => {
      await service.delete(request.params.workspaceId, ruleId(request.params.ruleId));
      request.audit = { resourceId: request.params.ruleId, description: 'rule deleted' };
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { workspaceId: string } }>(
    `${base}/placeholders`,
    { onRequest: workspaceAccess('rules:read', 'rules'), schema: { tags: ['detection'], summary: 'Values of %placeholders% for the expand modifier', params: WorkspaceParams } },
    async (request) => ({ placeholders: await service.listPlaceholders(request.params.workspaceId) }),
  );

  app.put<{ Params: { workspaceId: string; name: string }; Body: { values: string[] } }>(
    `${base}/placeholders/:name`,
    {
      config: audit('rule.placeholder_set'),
      onRequest: workspaceAccess('rules:update', 'rules'),
      schema: {
        tags: ['detection'], summary: 'Set the values of a placeholder', params: Type.Object({ workspaceId: Type.String(), name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }) }),
        body: Type.Object({ values: Type.Array(Type.String({ minLength: 1, maxLength: 1000 }), { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false }),
      },
    },
    async (request) => {
      await service.setPlaceholder(request.params.workspaceId, request.params.name, request.body.values);
      request.audit = { resourceId: request.params.name, description: `placeholder %${request.params.name}% set (${request.body.values.length} values)` };
      return { name: request.params.name, values: request.body.values };
    },
  );

  app.post<{ Params: { workspaceId: string; ruleId: string }; Body: { from: string; to: string; raiseAlerts?: boolean } }>(
    `${base}/rules/:ruleId/hunts`,
    {
      config: audit('rule.hunt'),
      onRequest: workspaceAccess('rules:hunt', 'rules'),
      schema: {
        tags: ['detection'], summary: 'Retro-hunt: run the rule over stored events of a time range (progress at GET …/hunts/:huntId)', params: RuleParams,
        body: Type.Object({ from: Type.String({ format: 'date-time' }), to: Type.String({ format: 'date-time' }), raiseAlerts: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      },
    },
    async (request, reply) => {
      const { id } = await service.startHunt(request.params.workspaceId, ruleId(request.params.ruleId), { from: new Date(request.body.from), to: new Date(request.body.to), raiseAlerts: request.body.raiseAlerts }, actorId(request));
      request.audit = { resourceId: request.params.ruleId, description: `retro-hunt ${id} from ${request.body.from} to ${request.body.to}` };
      return reply.status(202).send(await service.hunt(request.params.workspaceId, id));
    },
  );

  app.get<{ Params: { workspaceId: string; huntId: string } }>(
    `${base}/hunts/:huntId`,
    { onRequest: workspaceAccess('rules:read', 'rules'), schema: { tags: ['detection'], summary: 'Progress and result of a retro-hunt', params: Type.Object({ workspaceId: Type.String(), huntId: Type.String() }) } },
    async (request) => {
      if (!isUuid(request.params.huntId)) throw new SiqError('SIQ_NOT_FOUND', 'No such retro-hunt in this workspace.');
      return service.hunt(request.params.workspaceId, request.params.huntId);
    },
  );
}
