import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough, Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { CronExpressionParser } from 'cron-parser';
import type { Config } from '../../config/load.js';
import { SiqError, isSiqError } from '../../errors.js';
import type { Cache } from '../../platform/cache/types.js';
import { loadMigrations, migrate } from '../../platform/db/migrate.js';
import { PgliteDatabase } from '../../platform/db/pglite.js';
import { PostgresDatabase } from '../../platform/db/postgres.js';
import type { Database, Queryable } from '../../platform/db/types.js';
import { persistRun, registerJob, unregisterJob } from '../../platform/jobs/registry.js';
import type { JobRun, ScheduledJob } from '../../platform/jobs/scheduler.js';
import type { Logger } from '../../platform/log/logger.js';
import type { BucketKind, ObjectStore } from '../../platform/objects/types.js';
import type { AlertService } from '../alerts/service.js';
import { buildKeyring, decryptStream, encryptStream, keyFingerprint, keyFor, macEqual, manifestMac, type Keyring } from './crypto.js';
import { countRows, countingStream, DumpScanner, dropPublicSchema, dumpDatabase, prepareTenantRole, restoreIntoPglite, restoreIntoPostgres, userTables } from './dump.js';
import { decideRetention, type BackupRecord } from './retention.js';

/** A stored part of a backup (the stored, encrypted bytes are what `sha256` and `size` describe). */
export interface PartInfo {
  key: string;
  size: number;
  sha256: string;
  /** Bytes before compression and encryption. */
  plainBytes: number;
}

export interface BackupManifest {
  format: 1;
  id: string;
  createdAt: string;
  trigger: 'schedule' | 'manual' | 'cli';
  /** The schedule's time slot this backup was taken for (scheduled backups). */
  slot?: string;
  platformVersion: string;
  /** The last migration applied to the database that was dumped. */
  schemaVersion: string;
  database: 'pglite' | 'postgres';
  dumpFormat: 'plain-sql';
  keyId: string;
  keyFingerprint: string;
  parts: { dump: PartInfo; objects: PartInfo };
  /** Rows per table (`public.name`) in the dump. */
  rowCounts: Record<string, number>;
  objects: { count: number; bytes: number; uploaded: number; reused: number };
  durationMs: number;
  /** HMAC of the manifest without this field, under the backup key. */
  mac?: string;
}

/** One object of the files or archives bucket, as the backup's object index records it. */
export interface ObjectEntry {
  bucket: BucketKind;
  key: string;
  sha256: string;
  size: number;
  contentType?: string;
  metadata: Record<string, string>;
  lastModified: string;
  etag?: string;
  /** The key the content-addressed copy is encrypted under. */
  keyId: string;
}

export interface Verification {
  ok: boolean;
  checkedAt: string;
  durationMs: number;
  scratch: 'pglite' | 'postgres';
  tables: number;
  rows: number;
  objectsChecked: number;
  error?: { code: string; message: string };
}

export interface BackupSummary {
  id: string;
  createdAt: string;
  trigger: BackupManifest['trigger'];
  sizeBytes: number;
  schemaVersion: string;
  platformVersion: string;
  database: BackupManifest['database'];
  keyId: string;
  objects: number;
  /** true verified, false verification failed, null not verified. */
  verified: boolean | null;
  verification?: Verification;
}

export interface BackupRunResult {
  manifest: BackupManifest;
  verification: Verification;
  retention: { kept: string[]; deleted: string[]; objectsDeleted: number };
}

export interface RestoreOptions {
  /** A PostgreSQL URL to restore into; default: DATABASE_URL, or the embedded database under DATA_DIR. */
  targetUrl?: string;
  /** Drop and recreate the target's public schema when it is not empty. */
  dropExisting?: boolean;
  /** Called with progress lines (the CLI prints them). */
  onProgress?: (line: string) => void;
}

export interface RestoreResult {
  id: string;
  target: 'pglite' | 'postgres';
  tables: number;
  rows: number;
  objects: number;
  migrationsApplied: string[];
}

export interface BackupDeps {
  config: Config;
  logger: Logger;
  objects: ObjectStore;
  db?: Database;
  cache?: Cache;
}

const BUCKET: BucketKind = 'backups';
const CONTENT_BUCKETS: BucketKind[] = ['files', 'archives'];
const RUN_LOCK = 'backup:run';
const RUN_LOCK_MS = 10 * 60_000;

const manifestKey = (id: string) => `backups/${id}/manifest.json`;
const verificationKey = (id: string, ok: boolean) => `backups/${id}/verification-${ok ? 'ok' : 'failed'}.json`;
const contentKey = (sha: string) => `objects/${sha}`;

function newBackupId(now: Date): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

/** `20261123T020000Z-ab12cd` → its time. */
export function backupTime(id: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-[0-9a-f]{6}$/.exec(id);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : null;
}

function hashing(onDone: (sha: string, bytes: number) => void): Transform {
  const hash = createHash('sha256');
  let bytes = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      onDone(hash.digest('hex'), bytes);
      done();
    },
  });
}

const discard = () => new Writable({ write: (_c, _e, done) => done() });

/** Reads a whole small stream (manifests, verification records). */
async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The schema version of a database: its last applied migration. */
export async function schemaVersionOf(db: Database): Promise<string> {
  const { rows } = await db.query<{ name: string | null }>('SELECT max(name) AS name FROM schema_migrations');
  return rows[0]?.name ?? '';
}

/**
 * Backups of the whole platform: the database as a portable SQL dump, the files and archives
 * buckets as content-addressed copies, an HMAC-signed manifest; each verified by a trial restore.
 * Restore checks everything before it touches the target.
 */
export class BackupService {
  private readonly ring?: Keyring;
  private alerts?: AlertService;

  constructor(private readonly deps: BackupDeps, options: { alerts?: AlertService } = {}) {
    const { backup } = deps.config;
    // Without a key (a configuration not passed through resolveSecrets) the service exists but refuses to work.
    if (backup.encryptionKey) this.ring = buildKeyring(backup.keyId, backup.encryptionKey, backup.previousKeys);
    this.alerts = options.alerts;
  }

  get keyring(): Keyring {
    if (!this.ring) throw new SiqError('SIQ_BACKUP_KEY_INVALID', 'BACKUP_ENCRYPTION_KEY is not set.');
    return this.ring;
  }

  private get log(): Logger {
    return this.deps.logger.child({ component: 'backup' });
  }

  private requireDb(): Database {
    if (!this.deps.db) throw new Error('this operation needs the database');
    return this.deps.db;
  }

  /**
   * Backs up, verifies, then applies retention — one run at a time across processes (cache
   * lock). A failed verification is logged as an error, recorded for /health and raised as an
   * alert; retention then deletes nothing older.
   */
  async run(options: { trigger?: BackupManifest['trigger']; slot?: Date } = {}): Promise<BackupRunResult> {
    const started = await this.start(options);
    if (!started) throw new SiqError('SIQ_BACKUP_RUNNING');
    return started.done;
  }

  /**
   * Takes the run lock and starts a run (backup, verification, retention) without waiting for it;
   * null while another run, in this or another process, holds the lock.
   */
  async start(options: { trigger?: BackupManifest['trigger']; slot?: Date } = {}): Promise<{ done: Promise<BackupRunResult> } | null> {
    const cache = this.deps.cache;
    const lock = cache ? await cache.acquireLock(RUN_LOCK, RUN_LOCK_MS) : null;
    if (cache && !lock) return null;
    const keepAlive = lock ? setInterval(() => void lock.extend(RUN_LOCK_MS), RUN_LOCK_MS / 3) : undefined;
    keepAlive?.unref();
    const done = (async () => {
      try {
        const { manifest, uploaded } = await this.create(options);
        const verification = await this.verify(manifest.id, { objects: uploaded });
        const retention = verification.ok ? await this.applyRetention() : { kept: [], deleted: [], objectsDeleted: 0 };
        return { manifest, verification, retention };
      } finally {
        clearInterval(keepAlive);
        await lock?.release();
      }
    })();
    return { done };
  }

  /** Writes one backup (no verification). Returns its manifest and the content hashes uploaded by this run. */
  async create(options: { trigger?: BackupManifest['trigger']; slot?: Date } = {}): Promise<{ manifest: BackupManifest; uploaded: Set<string> }> {
    const db = this.requireDb();
    const started = Date.now();
    const now = new Date();
    const id = newBackupId(now);
    const work = mkdtempSync(join(tmpdir(), 'siq-backup-'));
    try {
      const schemaVersion = await schemaVersionOf(db);
      const scanner = new DumpScanner();
      const sql = await dumpDatabase(db, this.deps.config.database.url);
      const dump = await this.writePart(`backups/${id}/dump.sql.gz.enc`, sql, work, [countingStream(scanner)]);

      const { entries, uploaded, reused } = await this.backupObjects(work);
      const index = Readable.from(entries.map((e) => `${JSON.stringify(e)}\n`));
      const objectsPart = await this.writePart(`backups/${id}/objects.jsonl.gz.enc`, index, work);

      const key = keyFor(this.keyring, this.keyring.currentId);
      const manifest: BackupManifest = {
        format: 1,
        id,
        createdAt: now.toISOString(),
        trigger: options.trigger ?? 'manual',
        ...(options.slot ? { slot: options.slot.toISOString() } : {}),
        platformVersion: this.deps.config.version,
        schemaVersion,
        database: db.kind,
        dumpFormat: 'plain-sql',
        keyId: this.keyring.currentId,
        keyFingerprint: keyFingerprint(key),
        parts: { dump, objects: objectsPart },
        rowCounts: Object.fromEntries([...scanner.rows].sort(([a], [b]) => a.localeCompare(b))),
        objects: { count: entries.length, bytes: entries.reduce((n, e) => n + e.size, 0), uploaded: uploaded.size, reused },
        durationMs: 0,
      };
      manifest.durationMs = Date.now() - started;
      const unsigned = JSON.stringify(manifest);
      manifest.mac = manifestMac(key, unsigned);
      // The manifest goes last: a backup without one is incomplete and never listed.
      await this.putSmall(manifestKey(id), JSON.stringify(manifest, null, 2));
      this.log.info({ backupId: id, bytes: dump.size + objectsPart.size, objects: entries.length, durationMs: manifest.durationMs }, 'backup written');
      return { manifest, uploaded };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }

  /** source → [transforms] → gzip → encrypt → temp file (hashed) → backups bucket (+ local copy). */
  private async writePart(key: string, source: Readable, work: string, transforms: Transform[] = []): Promise<PartInfo> {
    const file = join(work, key.replace(/\//g, '_'));
    let plainBytes = 0;
    let sha256 = '';
    let size = 0;
    const chain: Array<NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream> = [
      source,
      ...transforms,
      hashing((_sha, bytes) => (plainBytes = bytes)),
      createGzip({ level: 6 }),
      encryptStream(this.keyring),
      hashing((sha, bytes) => {
        sha256 = sha;
        size = bytes;
      }),
      createWriteStream(file),
    ];
    await pipeline(chain);
    await this.putFile(key, file, size, { sha256 });
    return { key, size, sha256, plainBytes };
  }

  private async putFile(key: string, file: string, size: number, metadata: Record<string, string>): Promise<void> {
    await this.deps.objects.put(BUCKET, key, createReadStream(file), { contentLength: size, contentType: 'application/octet-stream', metadata });
    await this.localCopy(key, file);
  }

  private async putSmall(key: string, text: string): Promise<void> {
    await this.deps.objects.put(BUCKET, key, Buffer.from(text), { contentType: 'application/json' });
    const dir = this.deps.config.backup.localDir;
    if (dir) {
      const target = join(dir, key);
      mkdirSync(dirname(target), { recursive: true });
      await pipeline(Readable.from([text]), createWriteStream(target));
    }
  }

  private async localCopy(key: string, file: string): Promise<void> {
    const dir = this.deps.config.backup.localDir;
    if (!dir) return;
    const target = join(dir, key);
    mkdirSync(dirname(target), { recursive: true });
    await copyFile(file, target);
  }

  /**
   * Copies the files and archives buckets into the backups bucket by content hash: an object
   * unchanged since the last backup (same size, time and etag) is not read again, and content
   * already stored under the current key is not uploaded again.
   */
  private async backupObjects(work: string): Promise<{ entries: ObjectEntry[]; uploaded: Set<string>; reused: number }> {
    const previous = new Map<string, ObjectEntry>();
    const latest = (await this.list()).find((b) => b.verified === true);
    if (latest) {
      try {
        for (const e of await this.readIndex(await this.manifest(latest.id))) previous.set(`${e.bucket}/${e.key}`, e);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'previous object index unreadable; hashing every object');
      }
    }
    const stored = new Set<string>();
    for await (const info of this.deps.objects.list(BUCKET, 'objects/')) stored.add(info.key.slice('objects/'.length));

    const entries: ObjectEntry[] = [];
    const uploaded = new Set<string>();
    let reused = 0;
    const current = this.keyring.currentId;
    for (const bucket of CONTENT_BUCKETS) {
      for await (const info of this.deps.objects.list(bucket)) {
        const before = previous.get(`${bucket}/${info.key}`);
        const unchanged = before && before.size === info.size && before.lastModified === info.lastModified.toISOString() && before.etag === info.etag;
        const base = { bucket, key: info.key, size: info.size, contentType: info.contentType, metadata: info.metadata, lastModified: info.lastModified.toISOString(), etag: info.etag };
        if (unchanged && before.keyId === current && stored.has(before.sha256)) {
          entries.push({ ...base, sha256: before.sha256, keyId: current });
          reused++;
          continue;
        }
        // Hash and encrypt in one read, into a temporary file; upload only new content.
        const file = join(work, `object-${entries.length}`);
        let sha256 = '';
        let size = 0;
        const got = await this.deps.objects.get(bucket, info.key);
        await pipeline(got.body, hashing((sha) => (sha256 = sha)), encryptStream(this.keyring), hashing((_s, bytes) => (size = bytes)), createWriteStream(file));
        const existing = stored.has(sha256) ? await this.deps.objects.head(BUCKET, contentKey(sha256)) : null;
        if (existing?.metadata.keyid === current) reused++;
        else if (!uploaded.has(sha256)) {
          await this.putFile(contentKey(sha256), file, size, { keyid: current, sha256 });
          uploaded.add(sha256);
          stored.add(sha256);
        }
        rmSync(file, { force: true });
        entries.push({ ...base, sha256, keyId: current });
      }
    }
    return { entries, uploaded, reused };
  }

  /** Every complete backup (one with a manifest), newest first, with its verification state. */
  async list(): Promise<BackupSummary[]> {
    const byId = new Map<string, { manifest: boolean; ok: boolean; failed: boolean }>();
    for await (const info of this.deps.objects.list(BUCKET, 'backups/')) {
      const [, id, name] = info.key.split('/');
      if (!id || !name) continue;
      const entry = byId.get(id) ?? { manifest: false, ok: false, failed: false };
      if (name === 'manifest.json') entry.manifest = true;
      if (name === 'verification-ok.json') entry.ok = true;
      if (name === 'verification-failed.json') entry.failed = true;
      byId.set(id, entry);
    }
    const out: BackupSummary[] = [];
    for (const [id, state] of byId) {
      if (!state.manifest) continue;
      let manifest: BackupManifest;
      try {
        manifest = JSON.parse((await readAll((await this.deps.objects.get(BUCKET, manifestKey(id))).body)).toString('utf8')) as BackupManifest;
      } catch {
        continue; // unreadable manifests are refused by restore; not listed
      }
      let verification: Verification | undefined;
      if (state.ok || state.failed) {
        try {
          verification = JSON.parse((await readAll((await this.deps.objects.get(BUCKET, verificationKey(id, !state.failed))).body)).toString('utf8')) as Verification;
        } catch {
          verification = undefined;
        }
      }
      out.push({
        id,
        createdAt: manifest.createdAt,
        trigger: manifest.trigger,
        sizeBytes: (manifest.parts?.dump?.size ?? 0) + (manifest.parts?.objects?.size ?? 0),
        schemaVersion: manifest.schemaVersion,
        platformVersion: manifest.platformVersion,
        database: manifest.database,
        keyId: manifest.keyId,
        objects: manifest.objects?.count ?? 0,
        verified: state.failed ? false : state.ok ? true : null,
        verification,
      });
    }
    return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  }

  /** The manifest of a backup, checked: known key, the right key, signature intact. */
  async manifest(id: string): Promise<BackupManifest> {
    if (!backupTime(id)) throw new SiqError('SIQ_BACKUP_NOT_FOUND', `"${id}" is not a backup id.`);
    let raw: Buffer;
    try {
      raw = await readAll((await this.deps.objects.get(BUCKET, manifestKey(id))).body);
    } catch (err) {
      if (isSiqError(err, 'SIQ_OBJECT_NOT_FOUND')) throw new SiqError('SIQ_BACKUP_NOT_FOUND', `Backup ${id} does not exist (no manifest).`);
      throw err;
    }
    let manifest: BackupManifest;
    try {
      manifest = JSON.parse(raw.toString('utf8')) as BackupManifest;
    } catch {
      throw new SiqError('SIQ_BACKUP_CORRUPT', `The manifest of backup ${id} is not valid JSON.`);
    }
    if (manifest.format !== 1 || manifest.id !== id || typeof manifest.keyId !== 'string' || !manifest.parts) throw new SiqError('SIQ_BACKUP_CORRUPT', `The manifest of backup ${id} is not a backup manifest.`);
    const key = keyFor(this.keyring, manifest.keyId, manifest.keyFingerprint);
    const { mac, ...unsigned } = manifest;
    if (!mac || !macEqual(mac, manifestMac(key, JSON.stringify(unsigned)))) throw new SiqError('SIQ_BACKUP_CORRUPT', `The manifest of backup ${id} was altered (its signature does not match).`);
    return manifest;
  }

  /** Downloads a part to a file, checking its size and SHA-256 against the manifest. */
  private async fetchPart(part: PartInfo, work: string): Promise<string> {
    const file = join(work, part.key.replace(/\//g, '_'));
    let sha = '';
    let bytes = 0;
    try {
      const got = await this.deps.objects.get(BUCKET, part.key);
      await pipeline(got.body, hashing((s, b) => ((sha = s), (bytes = b))), createWriteStream(file));
    } catch (err) {
      if (isSiqError(err, 'SIQ_OBJECT_NOT_FOUND')) throw new SiqError('SIQ_BACKUP_CORRUPT', `The backup part ${part.key} is missing.`);
      throw err;
    }
    if (sha !== part.sha256 || bytes !== part.size) throw new SiqError('SIQ_BACKUP_CORRUPT', `The backup part ${part.key} does not match its checksum in the manifest.`, { details: { part: part.key } });
    return file;
  }

  private plain(file: string): Readable {
    const out = new PassThrough();
    pipeline(createReadStream(file), decryptStream(this.keyring), createGunzip(), out).catch((err: unknown) => out.destroy(err as Error));
    return out;
  }

  private async readIndex(manifest: BackupManifest, work?: string): Promise<ObjectEntry[]> {
    const dir = work ?? mkdtempSync(join(tmpdir(), 'siq-backup-'));
    try {
      const file = await this.fetchPart(manifest.parts.objects, dir);
      const text = (await readAll(this.plain(file))).toString('utf8');
      return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as ObjectEntry);
    } finally {
      if (!work) rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Decrypts a content-addressed object and checks its hash; into `sink` (default: nowhere). */
  private async checkObject(sha256: string, sink: Writable = discard()): Promise<void> {
    let actual = '';
    try {
      const got = await this.deps.objects.get(BUCKET, contentKey(sha256));
      await pipeline(got.body, decryptStream(this.keyring), hashing((s) => (actual = s)), sink);
    } catch (err) {
      if (isSiqError(err, 'SIQ_OBJECT_NOT_FOUND')) throw new SiqError('SIQ_BACKUP_CORRUPT', `The stored object ${sha256} is missing.`);
      throw err;
    }
    if (actual !== sha256) throw new SiqError('SIQ_BACKUP_CORRUPT', `The stored object ${sha256} does not match its hash.`);
  }

  /**
   * Checks a backup: manifest signature, part checksums, decryption, and a trial restore into a
   * scratch database whose row counts must equal the manifest's. Objects: each must exist; those
   * in `objects` (uploaded by this run) or all with `deep` are decrypted and hashed. The result
   * is stored next to the backup; a failure is logged as an error and raised as an alert.
   */
  async verify(id: string, options: { objects?: Set<string>; deep?: boolean } = {}): Promise<Verification> {
    const started = Date.now();
    const work = mkdtempSync(join(tmpdir(), 'siq-verify-'));
    let scratch: Verification['scratch'] = 'pglite';
    let tables = 0;
    let rows = 0;
    let objectsChecked = 0;
    let error: Verification['error'];
    try {
      const manifest = await this.manifest(id);
      const dumpFile = await this.fetchPart(manifest.parts.dump, work);
      const index = await this.readIndex(manifest, work);
      const restored = await this.trialRestore(dumpFile);
      scratch = restored.scratch;
      const expected = manifest.rowCounts;
      const mismatched = Object.keys(expected).filter((t) => restored.counts[t] !== expected[t]);
      tables = Object.keys(expected).length;
      rows = Object.values(restored.counts).reduce((n, c) => n + c, 0);
      if (mismatched.length > 0) throw new SiqError('SIQ_BACKUP_CORRUPT', `Row counts differ from the manifest after the trial restore: ${mismatched.slice(0, 5).join(', ')}.`);
      const present = new Set<string>();
      for await (const info of this.deps.objects.list(BUCKET, 'objects/')) present.add(info.key.slice('objects/'.length));
      for (const sha of new Set(index.map((e) => e.sha256))) {
        if (!present.has(sha)) throw new SiqError('SIQ_BACKUP_CORRUPT', `The stored object ${sha} is missing.`);
        if (options.deep || options.objects?.has(sha)) await this.checkObject(sha);
        objectsChecked++;
      }
    } catch (err) {
      error = { code: isSiqError(err) ? err.code : 'SIQ_BACKUP_FAILED', message: (err as Error).message };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    const verification: Verification = { ok: !error, checkedAt: new Date().toISOString(), durationMs: Date.now() - started, scratch, tables, rows, objectsChecked, ...(error ? { error } : {}) };
    await this.deps.objects.delete(BUCKET, verificationKey(id, !verification.ok)).catch(() => undefined);
    await this.putSmall(verificationKey(id, verification.ok), JSON.stringify(verification, null, 2)).catch((err: unknown) => this.log.error({ err, backupId: id }, 'recording the verification failed'));
    if (verification.ok) this.log.info({ backupId: id, tables, rows, objectsChecked, durationMs: verification.durationMs }, 'backup verified');
    else {
      this.log.error({ backupId: id, error }, `backup ${id} FAILED verification: ${error!.message}`);
      await this.raiseAlert(id, error!);
    }
    return verification;
  }

  /**
   * Restores a dump into a scratch database and counts its rows: a temporary database on the
   * same server when the source is PostgreSQL and the role may create databases, otherwise a
   * fresh in-memory PGlite (the dump is portable, so either proves it restores).
   */
  private async trialRestore(dumpFile: string): Promise<{ scratch: Verification['scratch']; counts: Record<string, number> }> {
    const scanner = new DumpScanner();
    const db = this.deps.db;
    const url = this.deps.config.database.url;
    if (db?.kind === 'postgres' && url) {
      const name = `siq_verify_${randomBytes(6).toString('hex')}`;
      let created = false;
      try {
        await db.query(`CREATE DATABASE ${name}`);
        created = true;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cannot create a scratch PostgreSQL database; verifying in PGlite');
      }
      if (created) {
        const target = new URL(url);
        target.pathname = `/${name}`;
        const scratch = new PostgresDatabase({ ...this.deps.config.database, url: target.toString(), poolSize: 1, statementTimeoutMs: 0 });
        try {
          const role = await prepareTenantRole(scratch);
          await restoreIntoPostgres(target.toString(), this.plain(dumpFile).pipe(countingStream(scanner)), role);
          return { scratch: 'postgres', counts: await countRows(scratch, [...scanner.rows.keys()]) };
        } finally {
          await scratch.close();
          await db.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((err: unknown) => this.log.warn({ err }, `dropping scratch database ${name} failed`));
        }
      }
    }
    const scratch = await PgliteDatabase.open();
    try {
      await restoreIntoPglite(scratch, this.plain(dumpFile).pipe(countingStream(scanner)));
      return { scratch: 'pglite', counts: await countRows(scratch, [...scanner.rows.keys()]) };
    } finally {
      await scratch.close();
    }
  }

  /**
   * Alerts are per workspace, so a failed verification is raised (rule `platform:backup-verification`)
   * in every workspace a platform admin belongs to — the people who can act on it — and goes
   * through those workspaces' notification channels. Without such a workspace it is only logged.
   */
  private async raiseAlert(id: string, error: NonNullable<Verification['error']>): Promise<void> {
    if (!this.alerts || !this.deps.db) return;
    try {
      const { rows } = await this.deps.db.query<{ workspace_id: string }>(
        'SELECT DISTINCT m.workspace_id FROM workspace_members m JOIN users u ON u.id = m.user_id WHERE u.is_platform_admin ORDER BY 1',
      );
      for (const { workspace_id: workspaceId } of rows) {
        await this.alerts.raise({
          workspaceId,
          ruleId: 'platform:backup-verification',
          ruleTitle: 'Backup verification failed',
          ruleKind: 'platform',
          severity: 'high',
          groupKey: '',
          events: [],
          at: new Date(),
          tags: ['sentineliq.backup'],
          details: { backupId: id, code: error.code, message: error.message },
        });
      }
      if (rows.length === 0) this.log.error({ backupId: id }, 'no workspace has a platform admin: the failed verification is reported by the log and /health only');
    } catch (err) {
      this.log.error({ err, backupId: id }, 'raising the backup-verification alert failed');
    }
  }

  /** Deletes the backups the policy no longer keeps (only once a newer one is verified), then unreferenced content. */
  async applyRetention(now = new Date()): Promise<BackupRunResult['retention']> {
    const all = await this.list();
    const records: BackupRecord[] = all.map((b) => ({ id: b.id, createdAt: new Date(b.createdAt), verified: b.verified }));
    const decision = decideRetention(records, now, this.deps.config.backup.retention);
    for (const id of decision.delete) {
      for await (const info of this.deps.objects.list(BUCKET, `backups/${id}/`)) await this.deps.objects.delete(BUCKET, info.key);
      this.log.info({ backupId: id }, 'backup deleted by retention');
    }
    // Incomplete backups (no manifest) older than a day are leftovers of crashed runs.
    const complete = new Set(all.map((b) => b.id));
    for await (const info of this.deps.objects.list(BUCKET, 'backups/')) {
      const id = info.key.split('/')[1] ?? '';
      const at = backupTime(id);
      if (!complete.has(id) && at && now.getTime() - at.getTime() > 86_400_000) await this.deps.objects.delete(BUCKET, info.key);
    }
    // Content no kept backup refers to. Any unreadable index stops the sweep (never delete blindly).
    let objectsDeleted = 0;
    const referenced = new Set<string>();
    try {
      for (const id of decision.keep) for (const e of await this.readIndex(await this.manifest(id))) referenced.add(e.sha256);
      const fresh = now.getTime() - 6 * 3_600_000; // content of a run in progress is not referenced yet
      for await (const info of this.deps.objects.list(BUCKET, 'objects/')) {
        if (referenced.has(info.key.slice('objects/'.length)) || info.lastModified.getTime() > fresh) continue;
        await this.deps.objects.delete(BUCKET, info.key);
        objectsDeleted++;
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'object sweep skipped: a kept backup\'s index is unreadable');
    }
    return { kept: decision.keep, deleted: decision.delete, objectsDeleted };
  }

  /**
   * Restores a backup (`latest`: the newest verified one). Everything is checked before the
   * target is touched: the manifest's signature and key, the schema version, every part's
   * checksum and every object's hash. Then the target must be empty (or `dropExisting`), the
   * dump is executed, migrations run, and the files and archives come back.
   */
  async restore(which: string, options: RestoreOptions = {}): Promise<RestoreResult> {
    const progress = options.onProgress ?? (() => undefined);
    const id = which === 'latest' ? (await this.list()).find((b) => b.verified === true)?.id : which;
    if (!id) throw new SiqError('SIQ_BACKUP_NOT_FOUND', 'There is no verified backup to restore.');
    const manifest = await this.manifest(id);
    const known = loadMigrations().map((m) => m.name);
    if (manifest.schemaVersion && !known.includes(manifest.schemaVersion)) {
      const newest = known[known.length - 1] ?? '';
      throw new SiqError('SIQ_BACKUP_SCHEMA_NEWER', `Backup ${id} has schema version ${manifest.schemaVersion}; this code knows up to ${newest}. Upgrade SentinelIQ to ${manifest.platformVersion} or later, then restore.`, { details: { backup: manifest.schemaVersion, code: newest } });
    }
    const work = mkdtempSync(join(tmpdir(), 'siq-restore-'));
    try {
      progress(`checking backup ${id} (${manifest.createdAt}, schema ${manifest.schemaVersion})`);
      const dumpFile = await this.fetchPart(manifest.parts.dump, work);
      await pipeline(this.plain(dumpFile), discard()); // decrypts end to end: a wrong key or damage stops here
      const index = await this.readIndex(manifest, work);
      for (const sha of new Set(index.map((e) => e.sha256))) await this.checkObject(sha);
      progress(`backup verified: ${Object.keys(manifest.rowCounts).length} tables, ${index.length} objects`);

      const targetUrl = options.targetUrl ?? this.deps.config.database.url;
      const target: Database = targetUrl
        ? new PostgresDatabase({ ...this.deps.config.database, url: targetUrl, statementTimeoutMs: 0 })
        : await PgliteDatabase.open(join(this.deps.config.dataDir, 'pglite'));
      try {
        await target.ping();
        const tables = await userTables(target);
        if (tables.length > 0) {
          if (!options.dropExisting) throw new SiqError('SIQ_BACKUP_TARGET_NOT_EMPTY', `The target database has ${tables.length} table(s). Restore into an empty database, or pass --drop-existing to drop and recreate its schema.`);
          progress('dropping the target\'s schema (--drop-existing)');
          await dropPublicSchema(target);
        }
        progress(`restoring the database into ${target.kind}`);
        if (target.kind === 'pglite') await restoreIntoPglite(target as PgliteDatabase, this.plain(dumpFile));
        else await restoreIntoPostgres(targetUrl!, this.plain(dumpFile), await prepareTenantRole(target));
        const counts = await countRows(target, Object.keys(manifest.rowCounts));
        const mismatched = Object.keys(manifest.rowCounts).filter((t) => counts[t] !== manifest.rowCounts[t]);
        if (mismatched.length > 0) throw new SiqError('SIQ_BACKUP_CORRUPT', `Row counts after the restore differ from the manifest: ${mismatched.slice(0, 5).join(', ')}.`);
        const statuses = await migrate(target);
        const applied = statuses.filter((s) => s.state === 'applied-now').map((s) => s.name);
        progress(applied.length > 0 ? `migrations applied: ${applied.join(', ')}` : 'schema is current');

        progress(`restoring ${index.length} objects`);
        for (const entry of index) {
          const file = join(work, 'object');
          await this.checkObject(entry.sha256, createWriteStream(file));
          await this.deps.objects.put(entry.bucket, entry.key, createReadStream(file), { contentLength: statSync(file).size, contentType: entry.contentType, metadata: entry.metadata });
        }
        return {
          id,
          target: target.kind,
          tables: Object.keys(counts).length,
          rows: Object.values(counts).reduce((n, c) => n + c, 0),
          objects: index.length,
          migrationsApplied: applied,
        };
      } finally {
        await target.close();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
}

export interface BackupHealth {
  status: 'ok' | 'pending' | 'off' | 'fail' | 'unknown';
  /** The newest complete backup and its verification. */
  latest?: { id: string; verified: boolean | null };
  /** The newest verified backup. */
  lastVerified?: string;
  detail: string;
}

/** The time between two runs of a cron schedule (from its next two occurrences). */
export function scheduleIntervalMs(expression: string, from = new Date()): number {
  const it = CronExpressionParser.parse(expression, { tz: 'UTC', currentDate: from });
  const a = it.next().getTime();
  const b = it.next().getTime();
  return b - a;
}

/**
 * What /health says about backups, from the key names in the backups bucket alone (cheap):
 * `fail` when the newest backup failed verification, or when no backup was verified within
 * twice the schedule's interval (once the installation is older than that); `pending` before.
 */
export async function backupHealth(objects: ObjectStore, config: Config, installedAt: Date, now = new Date()): Promise<BackupHealth> {
  const ids = new Map<string, { manifest: boolean; ok: boolean; failed: boolean }>();
  for await (const info of objects.list(BUCKET, 'backups/')) {
    const [, id, name] = info.key.split('/');
    if (!id || !name || !backupTime(id)) continue;
    const entry = ids.get(id) ?? { manifest: false, ok: false, failed: false };
    if (name === 'manifest.json') entry.manifest = true;
    else if (name === 'verification-ok.json') entry.ok = true;
    else if (name === 'verification-failed.json') entry.failed = true;
    ids.set(id, entry);
  }
  const complete = [...ids].filter(([, s]) => s.manifest).sort(([a], [b]) => b.localeCompare(a));
  const latestEntry = complete[0];
  const latest = latestEntry ? { id: latestEntry[0], verified: latestEntry[1].failed ? false : latestEntry[1].ok ? true : null } : undefined;
  const lastVerified = complete.find(([, s]) => s.ok && !s.failed)?.[0];
  if (latest?.verified === false) return { status: 'fail', latest, lastVerified, detail: `the newest backup ${latest.id} failed verification` };
  if (!config.backup.schedule) return { status: 'off', latest, lastVerified, detail: 'BACKUP_SCHEDULE is off' };
  const window = 2 * scheduleIntervalMs(config.backup.schedule, now);
  const lastAt = lastVerified ? backupTime(lastVerified)!.getTime() : null;
  if (lastAt !== null && now.getTime() - lastAt <= window) return { status: 'ok', latest, lastVerified, detail: `last verified backup ${lastVerified}` };
  if (now.getTime() - installedAt.getTime() <= window) return { status: 'pending', latest, lastVerified, detail: 'no verified backup yet; the first is due by the schedule' };
  return { status: 'fail', latest, lastVerified, detail: lastVerified ? `no verified backup within twice the schedule's interval (last ${lastVerified})` : 'no backup has been verified' };
}

/** The backup job: the admin jobs API's handle (run now, last run) plus the cron schedule's slots. */
export interface BackupSchedule extends ScheduledJob {
  /** Runs the backup for one schedule slot, unless another process already claimed that slot. */
  runSlot(slot: Date): Promise<BackupRunResult | null>;
  nextRun(): Date | null;
}

export const BACKUP_JOB = 'backup';

/**
 * Runs the backup at each time of a cron expression (UTC). Every process sharing the cache arms
 * the same timer, and each slot is claimed once (`setIfAbsent` on the slot's key), so two
 * processes — or a restart inside the slot — never back up twice for one slot. The job is listed
 * in the job registry as `backup` (GET /api/v1/admin/jobs), where an admin can also run it now;
 * every run is recorded like the interval jobs' (the cache's `job:last:backup` and `job_runs`).
 */
export function scheduleBackups(deps: { cache: Cache; logger: Logger; db?: Queryable }, service: BackupService, expression: string): BackupSchedule {
  const log = deps.logger.child({ component: 'jobs', job: BACKUP_JOB });
  let timer: NodeJS.Timeout | undefined;
  let next: Date | null = null;
  let stopped = false;

  const record = async (run: JobRun): Promise<JobRun> => {
    await deps.cache.set(`job:last:${BACKUP_JOB}`, JSON.stringify(run));
    if (deps.db) await persistRun(deps.db, run).catch((err: unknown) => log.warn({ err }, 'the backup run could not be recorded in job_runs'));
    return run;
  };
  /** Waits for a started run and records it; rethrows a failure after recording it. */
  const finish = async (done: Promise<BackupRunResult>): Promise<{ run: JobRun; result?: BackupRunResult; error?: unknown }> => {
    const started = Date.now();
    const startedAt = new Date(started).toISOString();
    try {
      const result = await done;
      const run = await record({ job: BACKUP_JOB, startedAt, durationMs: Date.now() - started, ok: result.verification.ok, result: { id: result.manifest.id, verified: result.verification.ok, deleted: result.retention.deleted.length }, ...(result.verification.ok ? {} : { error: 'the backup failed verification' }) });
      return { run, result };
    } catch (error) {
      log.error({ err: error }, 'backup failed');
      return { run: await record({ job: BACKUP_JOB, startedAt, durationMs: Date.now() - started, ok: false, error: (error as Error).message }), error };
    }
  };

  const runSlot = async (slot: Date): Promise<BackupRunResult | null> => {
    const claimed = await deps.cache.setIfAbsent(`backup:slot:${slot.toISOString()}`, String(process.pid), { ttlMs: 7 * 86_400_000 });
    if (!claimed) return null;
    const started = await service.start({ trigger: 'schedule', slot });
    // A run started by hand holds the lock right now: this slot is covered by it.
    if (!started) {
      log.info({ slot: slot.toISOString() }, 'a backup is already running; the scheduled one is skipped');
      return null;
    }
    const { result, error } = await finish(started.done);
    if (!result) throw error;
    return result;
  };

  const trigger = async (): Promise<{ done: Promise<JobRun> } | null> => {
    const started = await service.start({ trigger: 'manual' });
    return started ? { done: finish(started.done).then((f) => f.run) } : null;
  };

  const arm = () => {
    if (stopped) return;
    next = CronExpressionParser.parse(expression, { tz: 'UTC', currentDate: new Date() }).next().toDate();
    const slot = next;
    const wait = Math.max(0, slot.getTime() - Date.now());
    // setTimeout holds at most ~24.8 days; longer waits re-arm on the way.
    timer = setTimeout(() => {
      if (Date.now() < slot.getTime() - 1000) return arm();
      void runSlot(slot).catch(() => undefined).finally(arm);
    }, Math.min(wait, 2 ** 31 - 1));
    timer.unref();
  };
  arm();
  const handle: BackupSchedule = {
    runSlot,
    nextRun: () => next,
    trigger,
    async runNow() {
      const started = await trigger();
      return started ? started.done : null;
    },
    async lastRun() {
      const raw = await deps.cache.get(`job:last:${BACKUP_JOB}`);
      return raw ? (JSON.parse(raw) as JobRun) : null;
    },
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      unregisterJob(deps.cache, BACKUP_JOB, handle);
    },
  };
  registerJob(deps.cache, { name: BACKUP_JOB, intervalMs: null, cron: expression, description: 'Backs up the database and object storage (encrypted), verifies the backup by a trial restore, then applies retention.', handle });
  return handle;
}
