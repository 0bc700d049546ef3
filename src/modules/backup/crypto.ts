import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { SiqError } from '../../errors.js';

/**
 * Backup encryption: AES-256-GCM in independent frames, so any size streams through a fixed
 * amount of memory and every frame is authenticated on its own.
 *
 * Layout: header `SIQB` · version (1) · key-id length (1) · key id (UTF-8) · nonce prefix (8) ·
 * key check (16) — then frames `[u32 BE: plaintext length | 0x80000000 on the last frame]
 * [ciphertext][16-byte tag]`. A frame's IV is the nonce prefix plus its 32-bit counter; its AAD
 * is the header plus the length word, so frames cannot be reordered, dropped, moved between
 * files, or the stream cut short (the last frame is marked). The key check (an HMAC of the
 * nonce prefix) tells a wrong key (SIQ_BACKUP_KEY_INVALID) apart from damaged data
 * (SIQ_BACKUP_CORRUPT).
 */
const MAGIC = Buffer.from('SIQB');
const VERSION = 1;
const FRAME_BYTES = 64 * 1024;
const FINAL = 0x8000_0000;
const TAG_BYTES = 16;

export interface Keyring {
  /** The id new backups are written under. */
  currentId: string;
  keys: Map<string, Buffer>;
}

/** Parses a 32-byte key given as 64 hex characters or base64/base64url. */
export function parseKey(text: string): Buffer {
  const value = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32) throw new Error('a backup key must be 32 bytes, written as 64 hex characters or base64');
  return key;
}

/** The current key plus `id:key` pairs of earlier keys (comma-separated) that old backups may need. */
export function buildKeyring(currentId: string, currentKey: string, previous = ''): Keyring {
  const keys = new Map<string, Buffer>([[currentId, parseKey(currentKey)]]);
  for (const entry of previous.split(',').map((s) => s.trim()).filter(Boolean)) {
    const at = entry.indexOf(':');
    if (at <= 0) throw new Error('BACKUP_PREVIOUS_KEYS entries are `id:key`');
    const id = entry.slice(0, at);
    if (!keys.has(id)) keys.set(id, parseKey(entry.slice(at + 1)));
  }
  return { currentId, keys };
}

function subkey(key: Buffer, purpose: string): Buffer {
  return createHmac('sha256', key).update(`sentineliq-backup:${purpose}`).digest();
}

/** A public fingerprint of a key (recorded in manifests): tells whether a key is the one a backup used. */
export function keyFingerprint(key: Buffer): string {
  return subkey(key, 'fingerprint').toString('hex').slice(0, 32);
}

export function keyFor(ring: Keyring, keyId: string, fingerprint?: string): Buffer {
  const key = ring.keys.get(keyId);
  if (!key) throw new SiqError('SIQ_BACKUP_KEY_INVALID', `The backup was encrypted under key "${keyId}", which this installation does not have. Add it to BACKUP_PREVIOUS_KEYS as ${keyId}:<key>.`, { details: { keyId } });
  if (fingerprint && keyFingerprint(key) !== fingerprint) {
    throw new SiqError('SIQ_BACKUP_KEY_INVALID', `The key configured as "${keyId}" is not the key this backup was encrypted with.`, { details: { keyId } });
  }
  return key;
}

/** HMAC of a manifest's JSON (without its `mac`), so an edited manifest is refused. */
export function manifestMac(key: Buffer, json: string): string {
  return createHmac('sha256', subkey(key, 'manifest')).update(json).digest('hex');
}

export function macEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

function keyCheck(key: Buffer, noncePrefix: Buffer): Buffer {
  return createHmac('sha256', subkey(key, 'key-check')).update(noncePrefix).digest().subarray(0, 16);
}

function iv(prefix: Buffer, counter: number): Buffer {
  const out = Buffer.alloc(12);
  prefix.copy(out, 0);
  out.writeUInt32BE(counter, 8);
  return out;
}

/** A stream that encrypts what passes through under `keyId`. */
export function encryptStream(ring: Keyring, keyId = ring.currentId): Transform {
  const key = keyFor(ring, keyId);
  const id = Buffer.from(keyId, 'utf8');
  if (id.length === 0 || id.length > 255) throw new Error('key id must be 1–255 bytes');
  const prefix = randomBytes(8);
  const header = Buffer.concat([MAGIC, Buffer.from([VERSION, id.length]), id, prefix, keyCheck(key, prefix)]);
  let counter = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let headerSent = false;

  const frame = (plain: Buffer, final: boolean): Buffer => {
    const word = Buffer.alloc(4);
    word.writeUInt32BE((plain.length | (final ? FINAL : 0)) >>> 0);
    const cipher = createCipheriv('aes-256-gcm', key, iv(prefix, counter++));
    cipher.setAAD(Buffer.concat([header, word]));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([word, body, cipher.getAuthTag()]);
  };

  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      if (!headerSent) {
        this.push(header);
        headerSent = true;
      }
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes > FRAME_BYTES) {
        const all = Buffer.concat(pending);
        let offset = 0;
        // Keep at least one byte back, so the final frame is never empty unless the input was.
        while (all.length - offset > FRAME_BYTES) {
          this.push(frame(all.subarray(offset, offset + FRAME_BYTES), false));
          offset += FRAME_BYTES;
        }
        pending = [all.subarray(offset)];
        pendingBytes = all.length - offset;
      }
      done();
    },
    flush(done: TransformCallback) {
      if (!headerSent) this.push(header);
      this.push(frame(Buffer.concat(pending), true));
      done();
    },
  });
}

const corrupt = (why: string) => new SiqError('SIQ_BACKUP_CORRUPT', `The encrypted backup data is damaged: ${why}.`);

/** A stream that decrypts `encryptStream` output with the key its header names (from `ring`). */
export function decryptStream(ring: Keyring): Transform {
  let buffer: Buffer = Buffer.alloc(0);
  let header: Buffer | null = null;
  let key: Buffer | null = null;
  let prefix: Buffer | null = null;
  let counter = 0;
  let finished = false;

  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      try {
        if (!header) {
          if (buffer.length < 6) return done();
          if (!buffer.subarray(0, 4).equals(MAGIC) || buffer[4] !== VERSION) throw corrupt('not a SentinelIQ backup stream');
          const idLength = buffer[5]!;
          const total = 6 + idLength + 8 + 16;
          if (buffer.length < total) return done();
          const keyId = buffer.subarray(6, 6 + idLength).toString('utf8');
          prefix = Buffer.from(buffer.subarray(6 + idLength, 14 + idLength));
          const check = buffer.subarray(14 + idLength, total);
          key = keyFor(ring, keyId);
          if (!timingSafeEqual(check, keyCheck(key, prefix))) {
            throw new SiqError('SIQ_BACKUP_KEY_INVALID', `The key configured as "${keyId}" is not the key this backup was encrypted with.`, { details: { keyId } });
          }
          header = Buffer.from(buffer.subarray(0, total));
          buffer = buffer.subarray(total);
        }
        while (buffer.length >= 4) {
          if (finished) throw corrupt('data after the last frame');
          const word = buffer.readUInt32BE(0);
          const length = word & ~FINAL;
          const final = (word & FINAL) !== 0;
          if (length > FRAME_BYTES) throw corrupt('frame too large');
          if (buffer.length < 4 + length + TAG_BYTES) break;
          const decipher = createDecipheriv('aes-256-gcm', key!, iv(prefix!, counter++));
          decipher.setAAD(Buffer.concat([header, buffer.subarray(0, 4)]));
          decipher.setAuthTag(buffer.subarray(4 + length, 4 + length + TAG_BYTES));
          let plain: Buffer;
          try {
            plain = Buffer.concat([decipher.update(buffer.subarray(4, 4 + length)), decipher.final()]);
          } catch {
            throw corrupt(`frame ${counter - 1} failed authentication`);
          }
          buffer = buffer.subarray(4 + length + TAG_BYTES);
          finished = final;
          if (plain.length > 0) this.push(plain);
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      if (!header) return done(corrupt('no header'));
      if (!finished || buffer.length > 0) return done(corrupt('the stream is truncated'));
      done();
    },
  });
}
