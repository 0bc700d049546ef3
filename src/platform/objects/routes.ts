import type { FastifyInstance } from 'fastify';
import { SiqError } from '../../errors.js';
import { FsObjectStore } from './fs.js';
import { bucketKinds, PUBLIC_PREFIX, type BucketKind, type ObjectStore } from './types.js';

function contentDisposition(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/**
 * Serves the local object store over HTTP: signed links from `signedUrl` until they expire,
 * and `public/` of the files bucket to anyone. An S3 store serves its own links, so nothing is
 * registered for it.
 */
export function objectRoutes(store: ObjectStore) {
  return async function routes(app: FastifyInstance): Promise<void> {
    if (!(store instanceof FsObjectStore)) return;
    app.get<{ Params: { bucket: string; '*': string }; Querystring: Record<string, string | undefined> }>(
      '/objects/:bucket/*',
      { schema: { hide: true } },
      async (request, reply) => {
        const bucket = request.params.bucket as BucketKind;
        const key = request.params['*'];
        if (!bucketKinds.includes(bucket)) throw new SiqError('SIQ_NOT_FOUND');
        const isPublic = bucket === 'files' && key.startsWith(PUBLIC_PREFIX);
        const { expires, signature, name } = request.query;
        if (!isPublic || signature !== undefined) store.verifySignedRequest({ bucket, key, expires, signature, name, method: 'GET' });
        const object = await store.get(bucket, key);
        reply.header('content-length', object.size);
        reply.header('cache-control', isPublic && signature === undefined ? 'public, max-age=300' : 'private, no-store');
        // Stored files are served as downloads or as inert data, never as pages of this origin.
        reply.header('content-security-policy', "default-src 'none'; sandbox");
        if (isPublic) reply.header('cross-origin-resource-policy', 'cross-origin');
        if (name) reply.header('content-disposition', contentDisposition(name));
        return reply.type(object.contentType ?? 'application/octet-stream').send(object.body);
      },
    );
  };
}
