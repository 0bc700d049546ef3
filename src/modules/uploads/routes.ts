import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { SiqError } from '../../errors.js';
import { workspaceAccess } from '../../http/auth.js';
import { UPLOAD_PURPOSES, type UploadPurpose } from './detect-type.js';
import type { StoredUpload, UploadService } from './service.js';

const WorkspaceParams = Type.Object({ workspaceId: Type.String() });
const UploadParams = Type.Object({ workspaceId: Type.String(), uploadId: Type.String() });
const audit = (action: string, resource: string) => ({ audit: { action, resource } });

function createdBy(request: FastifyRequest): string | null {
  return request.auth?.kind === 'user' ? request.auth.userId : null;
}

function contentDisposition(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/**
 * Evidence bytes are read through the evidence API, which records each access on the item's
 * chain of custody; the upload routes show evidence metadata only.
 */
function refuseEvidence(upload: StoredUpload): void {
  if (upload.purpose === 'evidence') throw new SiqError('SIQ_FORBIDDEN', 'Evidence files are read and deleted through the evidence API, which records the chain of custody.');
}

/** Uploads (logos, attachments, evidence files) and the workspace's storage quota. See docs/uploads.md. */
export function uploadRoutes(service: UploadService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    // Registered in this plugin only: the parser streams file parts and never reads a body whole;
    // per-purpose limits are enforced by the service while streaming (the +1 lets it see the overflow first).
    await app.register(multipart, {
      limits: { fileSize: service.largestMaxBytes() + 1, files: 1, fields: 5, fieldSize: 1024, parts: 8, headerPairs: 200 },
    });

    const withUrl = async (upload: StoredUpload) => {
      if (upload.public) return { ...upload, url: service.publicUrl(upload) ?? null, urlExpiresAt: null };
      if (upload.purpose === 'evidence') return { ...upload, url: null, urlExpiresAt: null };
      const seconds = app.platform.config.uploads.signedUrlSeconds;
      return { ...upload, url: await service.signedUrl(upload.workspaceId, upload.id, seconds), urlExpiresAt: new Date(Date.now() + seconds * 1000).toISOString() };
    };

    app.post<{ Params: { workspaceId: string }; Querystring: { purpose?: UploadPurpose } }>(
      '/workspaces/:workspaceId/uploads',
      {
        config: audit('upload.create', 'upload'),
        onRequest: workspaceAccess('uploads:create', 'uploads'),
        schema: {
          tags: ['uploads'],
          summary: 'Upload a file (multipart/form-data: a `purpose` field, then one `file` field; streamed)',
          params: WorkspaceParams,
          querystring: Type.Object({ purpose: Type.Optional(Type.Enum([...UPLOAD_PURPOSES])) }),
        },
      },
      async (request, reply) => {
        if (!request.isMultipart()) throw new SiqError('SIQ_UPLOAD_INVALID');
        const part = await request.file();
        if (!part || part.fieldname !== 'file') throw new SiqError('SIQ_UPLOAD_INVALID', 'Send the file in a multipart field named `file`.');
        const field = part.fields.purpose;
        const fromField = field && !Array.isArray(field) && field.type === 'field' ? String(field.value) : undefined;
        const purpose = (request.query.purpose ?? fromField) as UploadPurpose | undefined;
        if (!purpose || !UPLOAD_PURPOSES.includes(purpose)) {
          part.file.resume();
          throw new SiqError('SIQ_UPLOAD_INVALID', 'Give `purpose` (logo, attachment or evidence) as a field before `file`, or as ?purpose=.');
        }
        const upload = await service.storeStream(request.params.workspaceId, part.file, { purpose, filename: part.filename, createdBy: createdBy(request) });
        request.audit = {
          resourceId: upload.id,
          description: `${purpose} "${upload.filename}" uploaded (${upload.size} bytes)`,
          metadata: { purpose, size: upload.size, sha256: upload.sha256, contentType: upload.contentType },
        };
        return reply.status(201).send(await withUrl(upload));
      },
    );

    app.get<{ Params: { workspaceId: string; uploadId: string } }>(
      '/workspaces/:workspaceId/uploads/:uploadId',
      { onRequest: workspaceAccess('uploads:read', 'uploads', 'uploadId'), schema: { tags: ['uploads'], summary: 'An upload\'s metadata and a fresh download link', params: UploadParams } },
      async (request) => withUrl(await service.get(request.params.workspaceId, request.params.uploadId)),
    );

    app.get<{ Params: { workspaceId: string; uploadId: string } }>(
      '/workspaces/:workspaceId/uploads/:uploadId/content',
      { onRequest: workspaceAccess('uploads:read', 'uploads', 'uploadId'), schema: { tags: ['uploads'], summary: 'The stored bytes, as a download', params: UploadParams } },
      async (request, reply: FastifyReply) => {
        const upload = await service.get(request.params.workspaceId, request.params.uploadId);
        refuseEvidence(upload);
        const body = await service.open(upload.workspaceId, upload.id);
        // Always a download, never rendered as a page of this origin.
        return reply
          .header('content-length', upload.size)
          .header('content-disposition', contentDisposition(upload.filename))
          .header('x-content-type-options', 'nosniff')
          .header('content-security-policy', "default-src 'none'; sandbox")
          .header('cache-control', 'private, no-store')
          .type(upload.contentType)
          .send(body);
      },
    );

    app.delete<{ Params: { workspaceId: string; uploadId: string } }>(
      '/workspaces/:workspaceId/uploads/:uploadId',
      { config: audit('upload.delete', 'upload'), onRequest: workspaceAccess('uploads:delete', 'uploads', 'uploadId'), schema: { tags: ['uploads'], summary: 'Delete an upload (its bytes return to the quota)', params: UploadParams } },
      async (request, reply) => {
        const upload = await service.get(request.params.workspaceId, request.params.uploadId);
        refuseEvidence(upload);
        await service.delete(upload.workspaceId, upload.id);
        request.audit = { resourceId: upload.id, description: `${upload.purpose} "${upload.filename}" deleted (${upload.size} bytes)`, metadata: { sha256: upload.sha256, size: upload.size } };
        return reply.status(204).send();
      },
    );

    app.get<{ Params: { workspaceId: string } }>(
      '/workspaces/:workspaceId/storage',
      { onRequest: workspaceAccess('uploads:read', 'storage'), schema: { tags: ['uploads'], summary: 'Storage used by the workspace and its quota', params: WorkspaceParams } },
      async (request) => service.usage(request.params.workspaceId),
    );

    app.put<{ Params: { workspaceId: string }; Body: { quotaBytes: number } }>(
      '/workspaces/:workspaceId/storage/quota',
      {
        config: audit('storage.quota_set', 'workspace'),
        onRequest: workspaceAccess('workspace:update', 'workspace'),
        schema: {
          tags: ['uploads'],
          summary: 'Set the workspace\'s storage quota in bytes',
          params: WorkspaceParams,
          body: Type.Object({ quotaBytes: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
        },
      },
      async (request) => {
        const usage = await service.setQuota(request.params.workspaceId, request.body.quotaBytes);
        request.audit = { resourceId: request.params.workspaceId, description: `storage quota set to ${request.body.quotaBytes} bytes`, metadata: { quotaBytes: request.body.quotaBytes } };
        return usage;
      },
    );

    app.delete<{ Params: { workspaceId: string } }>(
      '/workspaces/:workspaceId/storage/quota',
      {
        config: audit('storage.quota_reset', 'workspace'),
        onRequest: workspaceAccess('workspace:update', 'workspace'),
        schema: { tags: ['uploads'], summary: 'Go back to the default storage quota (WORKSPACE_STORAGE_QUOTA_BYTES)', params: WorkspaceParams },
      },
      async (request) => {
        const usage = await service.setQuota(request.params.workspaceId, null);
        request.audit = { resourceId: request.params.workspaceId, description: 'storage quota reset to the default' };
        return usage;
      },
    );
  };
}
