import type { Readable } from 'node:stream';

/**
 * Object storage for uploads, evidence, backups and cold archives. `fs.ts` keeps objects under
 * DATA_DIR/objects; `s3.ts` talks to any S3-compatible store. Both stream: no body is held whole
 * in memory. Keys are validated (see `validateKey`) so no caller escapes its bucket.
 */
export type BucketKind = 'files' | 'backups' | 'archives';
/** files: uploads, evidence, logos; backups: platform backups; archives: the cold tier of the event store. */
export const bucketKinds: readonly BucketKind[] = ['files', 'backups', 'archives'];

/** Keys under this prefix of the files bucket are publicly readable (workspace logos). */
export const PUBLIC_PREFIX = 'public/';

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
  contentType?: string;
  etag?: string;
  metadata: Record<string, string>;
}

export interface PutOptions {
  contentType?: string;
  /** User metadata: lower-case ASCII names, string values (stored as S3 x-amz-meta-*). */
  metadata?: Record<string, string>;
  /** Length of the body when known in advance (lets S3 upload in one request). */
  contentLength?: number;
}

export interface GetResult extends ObjectInfo {
  body: Readable;
}

export interface SignedUrlOptions {
  expiresInSeconds: number;
  method?: 'GET' | 'PUT';
  /** Sets Content-Disposition on GET so browsers download under this name. */
  downloadName?: string;
}

export interface SetupReport {
  buckets: Array<{ kind: BucketKind; name: string; created: boolean }>;
  publicRead: { bucket: string; prefix: string; applied: boolean; note?: string };
}

export interface ObjectStore {
  readonly kind: 'fs' | 's3';
  /** The physical bucket name: `<prefix>-<env>-<kind>`. */
  bucketName(bucket: BucketKind): string;
  /** Creates missing buckets and makes `public/` of the files bucket publicly readable. Idempotent. */
  setup(): Promise<SetupReport>;
  put(bucket: BucketKind, key: string, body: Readable | Buffer | string, options?: PutOptions): Promise<ObjectInfo>;
  /** Throws SiqError SIQ_OBJECT_NOT_FOUND when absent. */
  get(bucket: BucketKind, key: string): Promise<GetResult>;
  /** Null when absent. */
  head(bucket: BucketKind, key: string): Promise<ObjectInfo | null>;
  /** Deleting an absent key is not an error. */
  delete(bucket: BucketKind, key: string): Promise<void>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(bucket: BucketKind, prefix?: string): AsyncIterable<ObjectInfo>;
  /** A URL anyone holding it can use until it expires. */
  signedUrl(bucket: BucketKind, key: string, options: SignedUrlOptions): Promise<string>;
  /** Throws when the store is unreachable or a bucket is missing. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
