import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, constants, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SiqError } from '../../errors.js';
import { validateKey, validateMetadata, validatePrefix } from './keys.js';
import { bucketKinds, PUBLIC_PREFIX, type BucketKind, type GetResult, type ObjectInfo, type ObjectStore, type PutOptions, type SetupReport, type SignedUrlOptions } from './types.js';

// Object files end in '$', a character keys may not contain, so key "a" (file "a$") and key
// "a/b" (directory "a") never collide on disk the way they would with plain names.
const DATA_SUFFIX = '$';
const META_SUFFIX = '$meta';

interface Meta {
  size: number;
  contentType?: string;
  metadata: Record<string, string>;
  lastModified: string;
}

export interface FsObjectStoreOptions {
  env: string;
  dataDir: string;
  bucketPrefix: string;
  /** Where the platform is reachable; signed URLs point at its /objects route. */
  publicUrl: string;
  /** HMAC key for signed URLs (derived from JWT_SECRET by the caller). */
  signingKey: string;
}

export interface SignedRequest {
  bucket: string;
  key: string;
  expires?: string;
  method?: string;
  name?: string;
  signature?: string;
}

function signaturePayload(method: string, bucket: string, key: string, expires: string, name: string): string {
  return [method, bucket, key, expires, name].join('\n');
}

function sign(signingKey: string, payload: string): string {
  return createHmac('sha256', signingKey).update(payload).digest('base64url');
}

/** Checks a signed local-store URL's signature and expiry; throws SIQ_SIGNED_URL_INVALID / _EXPIRED. */
export function verifySignedObjectRequest(signingKey: string, request: SignedRequest, now: number = Date.now()): void {
  const { bucket, key, expires = '', method = 'GET', name = '', signature = '' } = request;
  const expected = Buffer.from(sign(signingKey, signaturePayload(method, bucket, key, expires, name)));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new SiqError('SIQ_SIGNED_URL_INVALID');
  if (!/^\d+$/.test(expires) || Number(expires) * 1000 < now) throw new SiqError('SIQ_SIGNED_URL_EXPIRED');
}

function notFound(key: string): SiqError {
  return new SiqError('SIQ_OBJECT_NOT_FOUND', `No stored object ${JSON.stringify(key)}.`);
}

/** Object storage in a local directory: DATA_DIR/objects/<bucket>/… */
export class FsObjectStore implements ObjectStore {
  readonly kind = 'fs' as const;
  private readonly root: string;

  constructor(private readonly options: FsObjectStoreOptions) {
    this.root = resolve(options.dataDir, 'objects');
  }

  bucketName(bucket: BucketKind): string {
    return `${this.options.bucketPrefix}-${this.options.env}-${bucket}`;
  }

  private bucketDir(bucket: BucketKind): string {
    if (!bucketKinds.includes(bucket)) throw new SiqError('SIQ_OBJECT_KEY_INVALID', `Unknown bucket ${JSON.stringify(bucket)}.`);
    return join(this.root, this.bucketName(bucket));
  }

  /** The data and metadata paths of a key, checked to stay inside the bucket (defense in depth). */
  private paths(bucket: BucketKind, key: string): { data: string; meta: string } {
    validateKey(key);
    const dir = this.bucketDir(bucket);
    const data = resolve(dir, key + DATA_SUFFIX);
    if (!data.startsWith(dir + sep)) throw new SiqError('SIQ_OBJECT_KEY_INVALID', 'Object key resolves outside its bucket.');
    return { data, meta: resolve(dir, key + META_SUFFIX) };
  }

  async setup(): Promise<SetupReport> {
    const buckets: SetupReport['buckets'] = [];
    for (const kind of bucketKinds) {
      const dir = this.bucketDir(kind);
      const existed = await stat(dir).then(() => true, () => false);
      await mkdir(join(dir, '.tmp'), { recursive: true });
      buckets.push({ kind, name: this.bucketName(kind), created: !existed });
    }
    return {
      buckets,
      publicRead: { bucket: this.bucketName('files'), prefix: PUBLIC_PREFIX, applied: true, note: 'served without a signature by GET /objects/files/public/…' },
    };
  }

  async put(bucket: BucketKind, key: string, body: Readable | Buffer | string, options: PutOptions = {}): Promise<ObjectInfo> {
    const { data, meta } = this.paths(bucket, key);
    const metadata = validateMetadata(options.metadata);
    const tmpDir = join(this.bucketDir(bucket), '.tmp');
    await mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, randomUUID());
    // Written to a temporary file first and renamed into place: readers never see half an object.
    try {
      await pipeline(typeof body === 'string' || Buffer.isBuffer(body) ? Readable.from([Buffer.from(body)]) : body, createWriteStream(tmp, { mode: 0o600 }));
      const { size } = await stat(tmp);
      const info: Meta = { size, contentType: options.contentType, metadata, lastModified: new Date().toISOString() };
      await mkdir(dirname(data), { recursive: true });
      await writeFile(`${tmp}.meta`, JSON.stringify(info), { mode: 0o600 });
      await rename(tmp, data);
      await rename(`${tmp}.meta`, meta);
      return { key, size, lastModified: new Date(info.lastModified), contentType: info.contentType, metadata };
    } catch (err) {
      await rm(tmp, { force: true });
      await rm(`${tmp}.meta`, { force: true });
      throw err;
    }
  }

  private async readInfo(bucket: BucketKind, key: string): Promise<ObjectInfo | null> {
    const { data, meta } = this.paths(bucket, key);
    const stats = await stat(data).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null;
      throw err;
    });
    if (!stats) return null;
    const info = JSON.parse(await readFile(meta, 'utf8').catch(() => '{}')) as Partial<Meta>;
    return { key, size: stats.size, lastModified: stats.mtime, contentType: info.contentType, metadata: info.metadata ?? {} };
  }

  async get(bucket: BucketKind, key: string): Promise<GetResult> {
    const info = await this.readInfo(bucket, key);
    if (!info) throw notFound(key);
    const { data } = this.paths(bucket, key);
    return { ...info, body: createReadStream(data) };
  }

  head(bucket: BucketKind, key: string): Promise<ObjectInfo | null> {
    return this.readInfo(bucket, key);
  }

  async delete(bucket: BucketKind, key: string): Promise<void> {
    const { data, meta } = this.paths(bucket, key);
    await rm(data, { force: true });
    await rm(meta, { force: true });
  }

  async *list(bucket: BucketKind, prefix = ''): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    const dir = this.bucketDir(bucket);
    // Start the walk at the deepest directory the prefix names, then filter by the full prefix.
    const prefixDir = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const keys: string[] = [];
    const walk = async (relative: string): Promise<void> => {
      const entries = await readdir(join(dir, relative), { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
        throw err;
      });
      for (const entry of entries) {
        const path = relative ? `${relative}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          if (!(relative === '' && entry.name === '.tmp')) await walk(path);
        } else if (entry.name.endsWith(DATA_SUFFIX)) {
          const key = path.slice(0, -DATA_SUFFIX.length);
          if (key.startsWith(prefix)) keys.push(key);
        }
      }
    };
    await walk(prefixDir);
    keys.sort();
    for (const key of keys) {
      const info = await this.readInfo(bucket, key);
      if (info) yield info;
    }
  }

  async signedUrl(bucket: BucketKind, key: string, options: SignedUrlOptions): Promise<string> {
    validateKey(key);
    const method = options.method ?? 'GET';
    if (method !== 'GET') throw new SiqError('SIQ_BAD_REQUEST', 'The local object store signs download links only; upload through the API.');
    const expires = String(Math.floor(Date.now() / 1000) + Math.max(1, Math.floor(options.expiresInSeconds)));
    const name = options.downloadName ?? '';
    const signature = sign(this.options.signingKey, signaturePayload(method, bucket, key, expires, name));
    const params = new URLSearchParams({ expires, signature });
    if (name) params.set('name', name);
    const path = key.split('/').map(encodeURIComponent).join('/');
    return `${this.options.publicUrl}/objects/${bucket}/${path}?${params.toString()}`;
  }

  /** Verifies a request made with a URL from `signedUrl`. */
  verifySignedRequest(request: SignedRequest): void {
    verifySignedObjectRequest(this.options.signingKey, request);
  }

  async ping(): Promise<void> {
    for (const kind of bucketKinds) await access(this.bucketDir(kind), constants.R_OK | constants.W_OK);
  }

  async close(): Promise<void> {
    // Nothing to release: every operation opens and closes its own files.
  }
}
