import { createHash } from 'node:crypto';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { BucketKind, ObjectStore } from './types.js';

// Gzip-compressed NDJSON objects, the format of the cold archives (event retention, data
// lifecycle): written and read as streams, with the size and SHA-256 of the stored bytes that
// their manifests record and check.

/** What a manifest records of a stored object. */
export interface StoredDigest {
  bytes: number;
  sha256: string;
}

/** A pass-through stream that counts and hashes (SHA-256) the bytes flowing through it. */
export class DigestTap extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  digest(): StoredDigest {
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }
}

/** Streams lines (each ending in `\n`) gzip-compressed into a bucket; returns the stored object's digest. */
export async function putGzipLines(objects: ObjectStore, bucket: BucketKind, key: string, lines: AsyncIterable<string> | Iterable<string>): Promise<StoredDigest> {
  const tap = new DigestTap();
  const body = new PassThrough();
  const upload = objects.put(bucket, key, body, { contentType: 'application/gzip' });
  await Promise.all([pipeline(Readable.from(lines), createGzip(), tap, body), upload]);
  return tap.digest();
}

/**
 * Reads a gzip-compressed object line by line (blank lines skipped), awaiting `onLine` for each,
 * and returns the stored bytes' digest with any unterminated text left at the end (a truncated
 * object) for the caller to judge against its manifest.
 */
export async function readGzipLines(objects: ObjectStore, bucket: BucketKind, key: string, onLine: (line: string) => void | Promise<void>): Promise<StoredDigest & { trailing: string }> {
  const tap = new DigestTap();
  let pending = '';
  await pipeline((await objects.get(bucket, key)).body, tap, createGunzip(), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) if (line) await onLine(line);
    }
  });
  return { ...tap.digest(), trailing: pending };
}

/** A small JSON object (a manifest) from a bucket. */
export async function getJson<T>(objects: ObjectStore, bucket: BucketKind, key: string): Promise<T> {
  const chunks: Buffer[] = [];
  for await (const chunk of (await objects.get(bucket, key)).body) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
}
