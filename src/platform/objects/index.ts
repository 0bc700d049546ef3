import { FsObjectStore } from './fs.js';
import { S3ObjectStore } from './s3.js';
import type { ObjectStore } from './types.js';

export type { BucketKind, GetResult, ObjectInfo, ObjectStore, PutOptions, SetupReport, SignedUrlOptions } from './types.js';
export { FsObjectStore, verifySignedObjectRequest } from './fs.js';
export { S3ObjectStore } from './s3.js';
export { validateKey, validatePrefix } from './keys.js';

export interface ObjectStoreConfig {
  env: string;
  dataDir: string;
  publicUrl: string;
  signingKey: string;
  s3: { endpoint?: string; region: string; accessKey?: string; secretKey?: string; bucketPrefix: string; forcePathStyle: boolean };
}

/** S3 when S3_ENDPOINT is set, otherwise a directory under DATA_DIR. */
export function createObjectStore(config: ObjectStoreConfig): ObjectStore {
  const { s3 } = config;
  if (s3.endpoint) {
    if (!s3.accessKey || !s3.secretKey) throw new Error('S3_ENDPOINT is set but S3_ACCESS_KEY or S3_SECRET_KEY is missing');
    return new S3ObjectStore({ env: config.env, endpoint: s3.endpoint, region: s3.region, accessKey: s3.accessKey, secretKey: s3.secretKey, bucketPrefix: s3.bucketPrefix, forcePathStyle: s3.forcePathStyle });
  }
  return new FsObjectStore({ env: config.env, dataDir: config.dataDir, bucketPrefix: s3.bucketPrefix, publicUrl: config.publicUrl, signingKey: config.signingKey });
}
