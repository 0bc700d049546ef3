import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { IngestPipeline, ItemResult, RawItem } from '../pipeline.js';
import { parseSyslog } from '../parsers/syslog.js';

export type FileFormat = 'ndjson' | 'json' | 'syslog';

/** The format a file's name suggests: `.json` → a JSON array, `.log`/`.syslog` → syslog lines, else NDJSON. */
export function formatOf(path: string): FileFormat {
  const name = path.replace(/\.gz$/, '');
  if (name.endsWith('.json')) return 'json';
  if (/\.(log|syslog|messages)$/.test(name) || /\/(syslog|messages|auth\.log|secure)(\.\d+)?$/.test(name)) return 'syslog';
  return 'ndjson';
}

export interface FileProgress {
  bytesRead: number;
  totalBytes: number;
  received: number;
  stored: number;
  rejected: number;
}

/**
 * Streams a file (optionally gzip) into the pipeline in batches, waiting for each batch to
 * commit before reading on, so memory stays bounded and a large file never floods the queue.
 * `onProgress` is called after every batch with the compressed bytes read so far.
 */
export async function ingestFile(pipeline: IngestPipeline, workspaceId: string, path: string, options: { format?: FileFormat; batchSize?: number; onProgress?: (p: FileProgress) => void } = {}): Promise<FileProgress> {
  const format = options.format ?? formatOf(path);
  const batchSize = options.batchSize ?? 2000;
  const progress: FileProgress = { bytesRead: 0, totalBytes: statSync(path).size, received: 0, stored: 0, rejected: 0 };
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      progress.bytesRead += chunk.length;
      done(null, chunk);
    },
  });
  let stream = createReadStream(path).pipe(counter);
  if (path.endsWith('.gz')) stream = stream.pipe(createGunzip());
  const extra = { 'log.file.path': path };

  const tally = (results: ItemResult[]) => {
    progress.received += results.length;
    progress.stored += results.filter((r) => r.status === 'stored').length;
    progress.rejected += results.filter((r) => r.status === 'rejected').length;
    options.onProgress?.({ ...progress });
  };
  const submit = async (items: RawItem[]) => {
    for (;;) {
      if (!pipeline.isFull(items.length)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    tally(await pipeline.ingest(workspaceId, 'file', items));
  };

  if (format === 'json') {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
      throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
    }
    const all = (Array.isArray(parsed) ? parsed : [parsed]).map((value) => ({ value, extra }));
    for (let i = 0; i < all.length; i += batchSize) await submit(all.slice(i, i + batchSize));
    return progress;
  }

  let batch: RawItem[] = [];
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    if (format === 'syslog') batch.push({ value: parseSyslog(line), extra });
    else {
      try {
        batch.push({ value: JSON.parse(line), extra });
      } catch (err) {
        batch.push({ error: 'invalid_json', message: `not valid JSON: ${(err as Error).message}` });
      }
    }
    if (batch.length >= batchSize) {
      await submit(batch);
      batch = [];
    }
  }
  if (batch.length > 0) await submit(batch);
  return progress;
}
