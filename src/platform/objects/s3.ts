import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Readable } from 'node:stream';
import { SiqError } from '../../errors.js';
import { validateKey, validateMetadata, validatePrefix } from './keys.js';
import { bucketKinds, PUBLIC_PREFIX, type BucketKind, type GetResult, type ObjectInfo, type ObjectStore, type PutOptions, type SetupReport, type SignedUrlOptions } from './types.js';

export interface S3ObjectStoreOptions {
  env: string;
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
  bucketPrefix: string;
  forcePathStyle: boolean;
}

function isNotFound(err: unknown): boolean {
  if (err instanceof S3ServiceException) return err.$metadata.httpStatusCode === 404 || err.name === 'NotFound' || err.name === 'NoSuchKey';
  return (err as { name?: string }).name === 'NotFound' || (err as { name?: string }).name === 'NoSuchKey';
}

/** Object storage on any S3-compatible server (AWS S3, MinIO, …) through AWS SDK v3. */
export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3' as const;
  private readonly client: S3Client;

  constructor(private readonly options: S3ObjectStoreOptions) {
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials: { accessKeyId: options.accessKey, secretAccessKey: options.secretKey },
      // Health checks and requests should fail in seconds, not hang on a dead endpoint.
      requestHandler: { connectionTimeout: 5000, requestTimeout: 60_000 },
      maxAttempts: 2,
    });
  }

  bucketName(bucket: BucketKind): string {
    if (!bucketKinds.includes(bucket)) throw new SiqError('SIQ_OBJECT_KEY_INVALID', `Unknown bucket ${JSON.stringify(bucket)}.`);
    return `${this.options.bucketPrefix}-${this.options.env}-${bucket}`;
  }

  async setup(): Promise<SetupReport> {
    const buckets: SetupReport['buckets'] = [];
    for (const kind of bucketKinds) {
      const name = this.bucketName(kind);
      const exists = await this.client.send(new HeadBucketCommand({ Bucket: name })).then(() => true, (err: unknown) => {
        if (isNotFound(err)) return false;
        throw err;
      });
      if (!exists) {
        await this.client.send(new CreateBucketCommand({ Bucket: name })).catch((err: unknown) => {
          if ((err as { name?: string }).name !== 'BucketAlreadyOwnedByYou') throw err;
        });
      }
      buckets.push({ kind, name, created: !exists });
    }
    // Anonymous read on public/ of the files bucket only (workspace logos); everything else stays
    // private and is reached through signed URLs.
    const files = this.bucketName('files');
    const policy = {
      Version: '2012-10-17',
      Statement: [{ Sid: 'PublicReadOfPublicPrefix', Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${files}/${PUBLIC_PREFIX}*`] }],
    };
    let applied = true;
    let note: string | undefined;
    try {
      await this.client.send(new PutBucketPolicyCommand({ Bucket: files, Policy: JSON.stringify(policy) }));
    } catch (err) {
      applied = false;
      note = `the server refused the bucket policy (${(err as Error).name}: ${(err as Error).message}); grant anonymous s3:GetObject on ${files}/${PUBLIC_PREFIX}* by hand`;
    }
    return { buckets, publicRead: { bucket: files, prefix: PUBLIC_PREFIX, applied, note } };
  }

  async put(bucket: BucketKind, key: string, body: Readable | Buffer | string, options: PutOptions = {}): Promise<ObjectInfo> {
    validateKey(key);
    const metadata = validateMetadata(options.metadata);
    const params = { Bucket: this.bucketName(bucket), Key: key, ContentType: options.contentType, Metadata: metadata };
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      const buffer = Buffer.from(body);
      await this.client.send(new PutObjectCommand({ ...params, Body: buffer, ContentLength: buffer.length }));
    } else {
      // Multipart upload in 8 MiB parts, at most 2 in flight: memory stays bounded whatever the size.
      await new Upload({ client: this.client, params: { ...params, Body: body }, partSize: 8 * 1024 * 1024, queueSize: 2, leavePartsOnError: false }).done();
    }
    const info = await this.head(bucket, key);
    if (!info) throw new SiqError('SIQ_INTERNAL', `Object ${key} was not readable right after it was written.`);
    return info;
  }

  async get(bucket: BucketKind, key: string): Promise<GetResult> {
    validateKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucketName(bucket), Key: key }));
      return {
        key,
        size: out.ContentLength ?? 0,
        lastModified: out.LastModified ?? new Date(0),
        contentType: out.ContentType,
        etag: out.ETag,
        metadata: out.Metadata ?? {},
        body: out.Body as Readable,
      };
    } catch (err) {
      if (isNotFound(err)) throw new SiqError('SIQ_OBJECT_NOT_FOUND', `No stored object ${JSON.stringify(key)}.`);
      throw err;
    }
  }

  async head(bucket: BucketKind, key: string): Promise<ObjectInfo | null> {
    validateKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucketName(bucket), Key: key }));
      return { key, size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0), contentType: out.ContentType, etag: out.ETag, metadata: out.Metadata ?? {} };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async delete(bucket: BucketKind, key: string): Promise<void> {
    validateKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucketName(bucket), Key: key }));
  }

  /**
   * Lists by prefix, following continuation tokens. ListObjectsV2 carries no content type or user
   * metadata, so entries have `metadata: {}`; call `head` for an object's metadata.
   */
  async *list(bucket: BucketKind, prefix = ''): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucketName(bucket), Prefix: prefix || undefined, ContinuationToken: token }));
      for (const item of page.Contents ?? []) {
        if (item.Key === undefined) continue;
        yield { key: item.Key, size: item.Size ?? 0, lastModified: item.LastModified ?? new Date(0), etag: item.ETag, metadata: {} };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async signedUrl(bucket: BucketKind, key: string, options: SignedUrlOptions): Promise<string> {
    validateKey(key);
    const Bucket = this.bucketName(bucket);
    const command =
      options.method === 'PUT'
        ? new PutObjectCommand({ Bucket, Key: key })
        : new GetObjectCommand({ Bucket, Key: key, ResponseContentDisposition: options.downloadName ? `attachment; filename="${options.downloadName.replace(/["\\\r\n]/g, '_')}"` : undefined });
    return getSignedUrl(this.client, command, { expiresIn: Math.max(1, Math.floor(options.expiresInSeconds)) });
  }

  async ping(): Promise<void> {
    for (const kind of bucketKinds) {
      const name = this.bucketName(kind);
      await this.client.send(new HeadBucketCommand({ Bucket: name })).catch((err: unknown) => {
        if (isNotFound(err)) throw new Error(`bucket ${name} does not exist: run \`sentineliq setup-storage\``);
        throw new Error(`S3 endpoint ${this.options.endpoint} unreachable or refused HeadBucket ${name}: ${(err as Error).name} ${(err as Error).message}`.trim());
      });
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
