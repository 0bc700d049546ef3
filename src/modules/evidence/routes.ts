import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { workspaceAccess } from '../../http/auth.js';
import { appendAudit } from '../audit/service.js';
import { exportIncident } from './export.js';
import type { AccessContext } from './service.js';

const IncidentParams = Type.Object({ workspaceId: Type.String(), incidentId: Type.String() });
const EvidenceParams = Type.Object({ workspaceId: Type.String(), incidentId: Type.String(), evidenceId: Type.String() });
const audit = (action: string) => ({ audit: { action, resource: 'evidence' } });
/** Roles that may delete evidence (besides the policy action evidence:delete, which analysts' evidence:* would grant). */
const DELETERS = new Set(['owner', 'admin']);

function contextOf(request: FastifyRequest): AccessContext {
  const auth = request.auth;
  const base = { ip: request.ip, requestId: String(request.id) };
  if (auth?.kind === 'user') return { ...base, userId: auth.userId, email: auth.email };
  if (auth?.kind === 'apikey') return { ...base, apiKeyId: auth.apiKeyId, email: `api key "${auth.name}"` };
  return base;
}

function fieldValue(fields: Record<string, unknown>, name: string): string | undefined {
  const field = fields[name] as { type?: string; value?: unknown } | Array<unknown> | undefined;
  if (!field || Array.isArray(field) || field.type !== 'field') return undefined;
  return String(field.value);
}

/** Evidence of incidents (upload, view, download, custody, verify, delete) and the incident export. See docs/incidents.md. */
export async function evidenceRoutes(app: FastifyInstance): Promise<void> {
  const evidence = app.evidence;
  // In this plugin only: file parts are streamed to the store, never read whole. The upload
  // service enforces the evidence size limit while streaming (+1 lets it see the overflow).
  await app.register(multipart, { limits: { fileSize: app.uploads.maxBytes('evidence') + 1, files: 1, fields: 5, fieldSize: 10_000, parts: 8, headerPairs: 200 } });

  app.post<{ Params: { workspaceId: string; incidentId: string }; Querystring: { description?: string; sha256?: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/evidence',
    {
      config: audit('evidence.add'),
      onRequest: workspaceAccess('evidence:create', 'incidents', 'incidentId'),
      schema: {
        tags: ['evidence'],
        summary: 'Attach evidence (multipart/form-data: optional `description` and `sha256` fields, then one `file` field; streamed and hashed byte-for-byte)',
        params: IncidentParams,
        querystring: Type.Object({ description: Type.Optional(Type.String({ maxLength: 10_000 })), sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$' })) }),
      },
    },
    async (request, reply) => {
      const { workspaceId, incidentId } = request.params;
      if (!request.isMultipart()) throw new SiqError('SIQ_UNSUPPORTED_MEDIA_TYPE', 'Send the evidence as multipart/form-data with the file in a field named `file`.');
      const part = await request.file();
      if (!part) throw new SiqError('SIQ_VALIDATION', 'No file: send the evidence in a multipart field named `file`.');
      if (part.fieldname !== 'file') {
        part.file.resume();
        throw new SiqError('SIQ_VALIDATION', 'Send the evidence in a multipart field named `file` (fields such as description go before it).');
      }
      const ctx = contextOf(request);
      const item = await evidence.add(workspaceId, incidentId, part.file, {
        filename: part.filename,
        declaredContentType: part.mimetype || null,
        description: fieldValue(part.fields, 'description') ?? request.query.description,
        expectedSha256: fieldValue(part.fields, 'sha256') ?? request.query.sha256,
      }, ctx);
      request.audit = { resourceId: item.id, description: `evidence "${item.filename}" added to incident ${incidentId} (${item.size} bytes, SHA-256 ${item.sha256})`, metadata: { incidentId, sha256: item.sha256, size: item.size } };
      return reply.status(201).send(item);
    },
  );

  app.get<{ Params: { workspaceId: string; incidentId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/evidence',
    { onRequest: workspaceAccess('evidence:read', 'incidents', 'incidentId'), schema: { tags: ['evidence'], summary: 'Evidence of the incident, tombstones included', params: IncidentParams } },
    async (request) => ({ evidence: await evidence.list(request.params.workspaceId, request.params.incidentId) }),
  );

  app.get<{ Params: { workspaceId: string; incidentId: string; evidenceId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/evidence/:evidenceId',
    { onRequest: workspaceAccess('evidence:read', 'evidence', 'evidenceId'), schema: { tags: ['evidence'], summary: 'One evidence record (recorded on its chain of custody as a view)', params: EvidenceParams } },
    async (request) => evidence.view(request.params.workspaceId, request.params.incidentId, request.params.evidenceId, contextOf(request)),
  );

  app.get<{ Params: { workspaceId: string; incidentId: string; evidenceId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/evidence/:evidenceId/download',
    { onRequest: workspaceAccess('evidence:read', 'evidence', 'evidenceId'), schema: { tags: ['evidence'], summary: 'The evidence bytes as stored (recorded on its chain of custody as a download)', params: EvidenceParams } },
    async (request, reply) => {
      const { evidence: item, stream } = await evidence.download(request.params.workspaceId, request.params.incidentId, request.params.evidenceId, contextOf(request));
      const ascii = item.filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(item.size))
        .header('content-disposition', `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(item.filename)}`)
        .header('x-evidence-sha256', item.sha256)
        .send(stream);
    },
  );

  app.get<{ Params: { workspaceId: string; incidentId: string; evidenceId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/evidence/:evidenceId/custody',
    { onRequest: workspaceAccess('evidence:read', 'evidence', 'evidenceId'), schema: { tags: ['evidence'], summary: 'The chain of custody, oldest first, and whether its hashes link up', params: EvidenceParams } },
    async (request) => evidence.custody(request.params.workspaceId, request.params.incidentId, request.params.evidenceId),
  );

  app.post<{ Params: { workspaceId: string; incidentId: string; evidenceId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/evidence/:evidenceId/verify',
    { config: audit('evidence.verify'), onRequest: workspaceAccess('evidence:verify', 'evidence', 'evidenceId'), schema: { tags: ['evidence'], summary: 'Re-read the stored bytes, recompute SHA-256 and check the custody chain; the result (passed or failed, with what differs) is recorded on the chain', params: EvidenceParams } },
    async (request) => {
      const { workspaceId, incidentId, evidenceId } = request.params;
      const report = await evidence.verify(workspaceId, incidentId, evidenceId, contextOf(request));
      request.audit = { resourceId: evidenceId, description: report.ok ? 'evidence verified: intact' : `EVIDENCE VERIFICATION FAILED: ${report.problems.join('; ')}`, metadata: { incidentId, result: report.result } };
      return report;
    },
  );

  app.delete<{ Params: { workspaceId: string; incidentId: string; evidenceId: string }; Querystring: { reason?: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/evidence/:evidenceId',
    {
      config: audit('evidence.delete'),
      onRequest: workspaceAccess('evidence:delete', 'evidence', 'evidenceId'),
      schema: { tags: ['evidence'], summary: 'Delete the bytes of evidence of a closed incident (admins and owners); a tombstone with the hash and a final custody entry remain', params: EvidenceParams, querystring: Type.Object({ reason: Type.Optional(Type.String({ maxLength: 2000 })) }) },
    },
    async (request) => {
      if (!DELETERS.has(request.workspace!.role)) throw new SiqError('SIQ_FORBIDDEN', 'Only workspace admins and owners can delete evidence.');
      const { workspaceId, incidentId, evidenceId } = request.params;
      const tombstone = await evidence.delete(workspaceId, incidentId, evidenceId, contextOf(request), request.query.reason);
      request.audit = { resourceId: evidenceId, description: `evidence "${tombstone.filename}" deleted (SHA-256 ${tombstone.sha256} kept)`, metadata: { incidentId, sha256: tombstone.sha256, reason: tombstone.deletionReason } };
      return tombstone;
    },
  );

  app.get<{ Params: { workspaceId: string; incidentId: string } }>(
    '/workspaces/:workspaceId/incidents/:incidentId/export',
    { onRequest: workspaceAccess('evidence:export', 'incidents', 'incidentId'), schema: { tags: ['evidence'], summary: 'The incident as one tar.gz (JSON, evidence files, custody chains, SHA256SUMS for `sha256sum -c`); streamed', params: IncidentParams } },
    async (request, reply) => {
      const { workspaceId, incidentId } = request.params;
      const ctx = contextOf(request);
      const result = await exportIncident({ incidents: app.incidents, evidence, logger: app.platform.logger }, workspaceId, incidentId, ctx);
      // A GET, so the audit hook does not see it; an export of evidence is worth an audit entry.
      const auth = request.auth;
      await appendAudit(app.platform.db, {
        workspaceId, userId: ctx.userId ?? null, userEmail: auth?.kind === 'user' ? auth.email : null, apiKeyId: ctx.apiKeyId ?? null,
        action: 'incident.export', resource: 'incident', resourceId: incidentId, description: `incident exported (export ${result.exportId})`,
        ip: request.ip, userAgent: request.headers['user-agent'] ?? null, requestId: String(request.id), metadata: { exportId: result.exportId },
      });
      return reply
        .header('content-type', 'application/gzip')
        .header('content-disposition', `attachment; filename="${result.filename}"`)
        .header('x-export-id', result.exportId)
        .send(result.stream);
    },
  );
}
