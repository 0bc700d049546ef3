import { createHash, randomUUID } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import sharp, { type Sharp } from 'sharp';
import { isSiqError, SiqError } from '../../errors.js';
import { withWorkspace } from '../../platform/db/tenant.js';
import type { Queryable } from '../../platform/db/types.js';
import type { Platform } from '../../platform/index.js';
import { PUBLIC_PREFIX } from '../../platform/objects/types.js';
import { detectType, IMAGE_TYPES, isAllowed, PURPOSE_RULES, SAMPLE_BYTES, UPLOAD_PURPOSES, type DetectedType, type UploadPurpose } from './detect-type.js';

export type { UploadPurpose } from './detect-type.js';

/** One stored file. `sha256` and `size` describe the stored bytes (for evidence: exactly the uploaded bytes). */
export interface StoredUpload {
  id: string;
  workspaceId: string;
  purpose: UploadPurpose;
  key: string;
  bucket: 'files';
  filename: string;
  contentType: string;
  size: number;
  sha256: string;
  createdBy: string | null;
  createdAt: string;
  public: boolean;
}

export interface StorageUsage {
  usedBytes: number;
  quotaBytes: number;
}

interface UploadRow {
  id: string;
  workspace_id: string;
  purpose: UploadPurpose;
  object_key: string;
  filename: string;
  content_type: string;
  size: number | string;
  sha256: string;
  public: boolean;
  created_by: string | null;
  created_at: Date | string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const COLUMNS = 'id, workspace_id, purpose, object_key, filename, content_type, size, sha256, public, created_by, created_at';
/** Decoded images larger than this many pixels are refused (a small file can decode to gigabytes). */
const MAX_INPUT_PIXELS = 50_000_000;

/** "A logo", "An attachment", "An evidence file". */
function article(purpose: UploadPurpose): string {
  return purpose === 'logo' ? 'A logo' : purpose === 'attachment' ? 'An attachment' : 'An evidence file';
}

function toUpload(row: UploadRow): StoredUpload {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    purpose: row.purpose,
    key: row.object_key,
    bucket: 'files',
    filename: row.filename,
    contentType: row.content_type,
    size: Number(row.size),
    sha256: row.sha256,
    createdBy: row.created_by,
    createdAt: new Date(row.created_at).toISOString(),
    public: row.public,
  };
}

/** The name shown for a file: its last path segment, without control characters, at most 255 characters. */
export function cleanFilename(name: string): string {
  const base = String(name ?? '').split(/[/\\]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const cleaned = base.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 255).trim();
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? 'file' : cleaned;
}

/** Reads the first `bytes` of a stream and returns a stream that yields everything again, sample first. */
async function peek(body: Readable, bytes: number): Promise<{ sample: Buffer; complete: boolean; stream: Readable; cancel(): Promise<void> }> {
  const iterator: AsyncIterator<unknown> = body[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let total = 0;
  let complete = false;
  while (total < bytes) {
    const next = await iterator.next();
    if (next.done) {
      complete = true;
      break;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as string);
    chunks.push(chunk);
    total += chunk.length;
  }
  let finished = complete;
  const cancel = async () => {
    if (!finished) {
      finished = true;
      await iterator.return?.();
    }
  };
  async function* replay(): AsyncGenerator<Buffer> {
    try {
      yield* chunks;
      chunks.length = 0;
      while (!finished) {
        const next = await iterator.next();
        if (next.done) {
          finished = true;
          return;
        }
        yield Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as string);
      }
    } finally {
      await cancel();
    }
  }
  return { sample: Buffer.concat(chunks).subarray(0, bytes), complete, stream: Readable.from(replay(), { objectMode: false }), cancel };
}

function image(type: DetectedType, maxDimension: number): Sharp {
  const animated = type.ext === 'gif' || type.ext === 'webp';
  // Metadata (EXIF with GPS, XMP, IPTC, comments) is dropped because none is asked to be kept;
  // rotate() first applies the EXIF orientation so dropping it does not turn photos sideways.
  let pipelineStage = sharp({ failOn: 'error', limitInputPixels: MAX_INPUT_PIXELS, animated, sequentialRead: true })
    .rotate()
    .resize({ width: maxDimension, height: maxDimension, fit: 'inside', withoutEnlargement: true });
  if (type.ext === 'jpg') pipelineStage = pipelineStage.jpeg({ quality: 82, mozjpeg: true });
  else if (type.ext === 'png') pipelineStage = pipelineStage.png({ compressionLevel: 9 });
  else if (type.ext === 'webp') pipelineStage = pipelineStage.webp({ quality: 82 });
  else pipelineStage = pipelineStage.gif();
  return pipelineStage;
}

/**
 * Files of a workspace in the object store's files bucket, with their metadata and the
 * workspace's storage quota in the database. Other modules (evidence) store through this.
 */
export class UploadService {
  constructor(private readonly platform: Platform) {}

  private get db() {
    return this.platform.db;
  }

  private get objects() {
    return this.platform.objects;
  }

  /** Largest accepted file per purpose, from the settings. */
  maxBytes(purpose: UploadPurpose): number {
    return this.platform.config.uploads.maxBytes[purpose];
  }

  /** The largest of the per-purpose limits (what the multipart parser is told). */
  largestMaxBytes(): number {
    return Math.max(...UPLOAD_PURPOSES.map((p) => this.maxBytes(p)));
  }

  /**
   * Streams `body` into object storage: sniff type from the first bytes (refuse disallowed types),
   * enforce the per-purpose size limit while streaming, hash SHA-256 while streaming, then account it
   * against the workspace quota atomically (refuse + delete the object if it would exceed). Images
   * (logo/attachment) are optimized with sharp; evidence is stored byte-for-byte (never re-encoded —
   * its hash must be of the original).
   *
   * Throws SIQ_UPLOAD_INVALID (unknown purpose), SIQ_UPLOAD_TYPE_NOT_ALLOWED, SIQ_UPLOAD_TOO_LARGE,
   * SIQ_STORAGE_QUOTA_EXCEEDED; nothing stays stored or counted after a refusal.
   */
  async storeStream(workspaceId: string, body: Readable, meta: { purpose: UploadPurpose; filename: string; createdBy: string | null }): Promise<StoredUpload> {
    const { purpose } = meta;
    if (!UPLOAD_PURPOSES.includes(purpose)) {
      body.destroy();
      throw new SiqError('SIQ_UPLOAD_INVALID', `Unknown upload purpose ${JSON.stringify(purpose)}: use logo, attachment or evidence.`);
    }
    if (!UUID.test(workspaceId)) {
      body.destroy();
      throw new SiqError('SIQ_NOT_FOUND', 'No such workspace.');
    }
    const rule = PURPOSE_RULES[purpose];
    const limit = this.maxBytes(purpose);
    const filename = cleanFilename(meta.filename);

    // 1. The type, from the content's first bytes.
    const peeked = await peek(body, SAMPLE_BYTES);
    const type = await detectType(peeked.sample, peeked.complete);
    if (!isAllowed(purpose, type)) {
      await peeked.cancel();
      throw new SiqError('SIQ_UPLOAD_TYPE_NOT_ALLOWED', `${article(purpose)} cannot be of type ${type.mime} (.${type.ext}), whatever the file name says.`, {
        details: { purpose, detectedType: type.mime },
      });
    }

    // 2. Stream into the store: size limit on the uploaded bytes, hash and size of the stored ones.
    const id = randomUUID();
    const isImage = rule.imageMaxDimension !== undefined && IMAGE_TYPES.has(type.ext);
    const isPublic = rule.public;
    const key = isPublic ? `${PUBLIC_PREFIX}logos/${workspaceId}/${id}.${type.ext}` : `workspaces/${workspaceId}/${purpose}/${id}`;
    let received = 0;
    const limiter = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        received += chunk.length;
        if (received > limit) callback(new SiqError('SIQ_UPLOAD_TOO_LARGE', `${article(purpose)} may be at most ${limit} bytes.`, { details: { purpose, maxBytes: limit } }));
        else callback(null, chunk);
      },
    });
    const hash = createHash('sha256');
    let size = 0;
    const hasher = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        hash.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    // Evidence may be malware: its object is stored as opaque bytes so no store serves it as anything else.
    const storedType = purpose === 'evidence' ? 'application/octet-stream' : type.mime;
    const put = async (source: AsyncIterable<unknown>) => {
      await this.objects.put('files', key, source as Readable, { contentType: storedType, metadata: { 'workspace-id': workspaceId, 'upload-id': id, purpose } });
    };
    let imageFailure: Error | undefined;
    try {
      if (isImage) {
        const optimizer = image(type, rule.imageMaxDimension!);
        optimizer.once('error', (err: Error) => {
          imageFailure ??= err;
        });
        await pipeline(peeked.stream, limiter, optimizer, hasher, put);
      } else {
        await pipeline(peeked.stream, limiter, hasher, put);
      }
    } catch (err) {
      await peeked.cancel().catch(() => undefined);
      await this.objects.delete('files', key).catch(() => undefined);
      if (isSiqError(err)) throw err;
      if (imageFailure && err === imageFailure) {
        throw new SiqError('SIQ_UPLOAD_TYPE_NOT_ALLOWED', `The file looks like ${type.mime} but is not a readable image.`, { details: { purpose, detectedType: type.mime } });
      }
      throw err;
    }
    const sha256 = hash.digest('hex');

    // 3. The quota, atomically, together with the row; the object goes again when either fails.
    try {
      const row = await withWorkspace(this.db, workspaceId, async (tx) => {
        await this.charge(tx, workspaceId, size);
        const { rows } = await tx.query<UploadRow>(
          `INSERT INTO uploads (id, workspace_id, purpose, object_key, filename, content_type, size, sha256, public, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${COLUMNS}`,
          [id, workspaceId, purpose, key, filename, type.mime, size, sha256, isPublic, meta.createdBy],
        );
        return rows[0]!;
      });
      return toUpload(row);
    } catch (err) {
      await this.objects.delete('files', key).catch((deleteErr: unknown) => this.platform.logger.warn({ err: deleteErr, key }, 'could not delete a refused upload\'s object'));
      if ((err as { code?: string }).code === '23503') throw new SiqError('SIQ_NOT_FOUND', 'No such workspace.');
      throw err;
    }
  }

  /** Adds `size` to the workspace's usage if it fits its quota; throws SIQ_STORAGE_QUOTA_EXCEEDED otherwise. */
  private async charge(tx: Queryable, workspaceId: string, size: number): Promise<void> {
    await tx.query('INSERT INTO workspace_storage (workspace_id) VALUES ($1) ON CONFLICT (workspace_id) DO NOTHING', [workspaceId]);
    // The row lock serialises concurrent uploads; each re-checks the condition against the latest usage.
    const updated = await tx.query(
      'UPDATE workspace_storage SET used_bytes = used_bytes + $2, updated_at = now() WHERE workspace_id = $1 AND used_bytes + $2 <= coalesce(quota_bytes, $3)',
      [workspaceId, size, this.platform.config.uploads.quotaBytes],
    );
    if (updated.rowCount === 0) {
      const usage = await this.readUsage(tx, workspaceId);
      throw new SiqError('SIQ_STORAGE_QUOTA_EXCEEDED', `This file (${size} bytes) does not fit: ${usage.usedBytes} of ${usage.quotaBytes} bytes are used.`, {
        details: { ...usage, fileBytes: size },
      });
    }
  }

  private async readUsage(tx: Queryable, workspaceId: string): Promise<StorageUsage> {
    const { rows } = await tx.query<{ used_bytes: number | string; quota_bytes: number | string | null }>('SELECT used_bytes, quota_bytes FROM workspace_storage WHERE workspace_id = $1', [workspaceId]);
    const row = rows[0];
    return { usedBytes: Number(row?.used_bytes ?? 0), quotaBytes: Number(row?.quota_bytes ?? this.platform.config.uploads.quotaBytes) };
  }

  /** The upload's metadata; SIQ_NOT_FOUND when it does not exist in this workspace. */
  async get(workspaceId: string, id: string): Promise<StoredUpload> {
    if (!UUID.test(workspaceId) || !UUID.test(id)) throw new SiqError('SIQ_NOT_FOUND', 'No such upload.');
    const { rows } = await withWorkspace(this.db, workspaceId, (tx) => tx.query<UploadRow>(`SELECT ${COLUMNS} FROM uploads WHERE workspace_id = $1 AND id = $2`, [workspaceId, id]));
    if (!rows[0]) throw new SiqError('SIQ_NOT_FOUND', 'No such upload.');
    return toUpload(rows[0]);
  }

  /** The stored bytes. */
  async open(workspaceId: string, id: string): Promise<Readable> {
    const upload = await this.get(workspaceId, id);
    return (await this.objects.get('files', upload.key)).body;
  }

  /** A time-limited download link (Content-Disposition: attachment under the file's name). */
  async signedUrl(workspaceId: string, id: string, expiresInSeconds: number = this.platform.config.uploads.signedUrlSeconds): Promise<string> {
    const upload = await this.get(workspaceId, id);
    return this.objects.signedUrl('files', upload.key, { expiresInSeconds, downloadName: upload.filename });
  }

  /** The permanent address of a public upload (a logo); undefined for private ones. */
  publicUrl(upload: StoredUpload): string | undefined {
    if (!upload.public) return undefined;
    const path = upload.key.split('/').map(encodeURIComponent).join('/');
    const { config } = this.platform;
    if (this.objects.kind === 'fs') return `${config.publicUrl}/objects/files/${path}`;
    const endpoint = new URL(config.s3.endpoint!);
    const bucket = this.objects.bucketName('files');
    if (config.s3.forcePathStyle) return `${endpoint.origin}${endpoint.pathname.replace(/\/+$/, '')}/${bucket}/${path}`;
    return `${endpoint.protocol}//${bucket}.${endpoint.host}/${path}`;
  }

  /** Deletes the upload and returns its bytes to the quota. SIQ_NOT_FOUND when absent. */
  async delete(workspaceId: string, id: string): Promise<void> {
    if (!UUID.test(workspaceId) || !UUID.test(id)) throw new SiqError('SIQ_NOT_FOUND', 'No such upload.');
    const removed = await withWorkspace(this.db, workspaceId, async (tx) => {
      const { rows } = await tx.query<{ object_key: string; size: number | string }>('DELETE FROM uploads WHERE workspace_id = $1 AND id = $2 RETURNING object_key, size', [workspaceId, id]);
      if (!rows[0]) return null;
      await tx.query('UPDATE workspace_storage SET used_bytes = greatest(used_bytes - $2, 0), updated_at = now() WHERE workspace_id = $1', [workspaceId, Number(rows[0].size)]);
      return rows[0];
    });
    if (!removed) throw new SiqError('SIQ_NOT_FOUND', 'No such upload.');
    // After the commit: a failure here leaves an unreferenced object, never a row without bytes.
    await this.objects.delete('files', removed.object_key).catch((err: unknown) => this.platform.logger.warn({ err, key: removed.object_key }, 'upload deleted but its object could not be removed'));
  }

  /** Bytes stored by the workspace and its quota. */
  async usage(workspaceId: string): Promise<StorageUsage> {
    if (!UUID.test(workspaceId)) throw new SiqError('SIQ_NOT_FOUND', 'No such workspace.');
    return withWorkspace(this.db, workspaceId, (tx) => this.readUsage(tx, workspaceId));
  }

  /**
   * Sets the workspace's quota (null: back to WORKSPACE_STORAGE_QUOTA_BYTES). A quota below the
   * current usage is allowed: nothing is deleted, new uploads are refused until usage drops below it.
   */
  async setQuota(workspaceId: string, quotaBytes: number | null): Promise<StorageUsage> {
    if (!UUID.test(workspaceId)) throw new SiqError('SIQ_NOT_FOUND', 'No such workspace.');
    if (quotaBytes !== null && (!Number.isSafeInteger(quotaBytes) || quotaBytes < 0)) throw new SiqError('SIQ_VALIDATION', 'quotaBytes must be a whole number of bytes, 0 or more.');
    return withWorkspace(this.db, workspaceId, async (tx) => {
      await tx.query(
        `INSERT INTO workspace_storage (workspace_id, quota_bytes) VALUES ($1, $2)
         ON CONFLICT (workspace_id) DO UPDATE SET quota_bytes = EXCLUDED.quota_bytes, updated_at = now()`,
        [workspaceId, quotaBytes],
      );
      return this.readUsage(tx, workspaceId);
    });
  }
}
