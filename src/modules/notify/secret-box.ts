import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const ALGORITHM = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SALT = 'sentineliq:secret-box:v1';

/** A sealed value: the ciphertext (base64url of IV ‖ ciphertext ‖ tag) and the id of the key that sealed it. */
export interface Sealed {
  ciphertext: string;
  keyId: string;
}

/** Raised when a sealed value cannot be opened: another key sealed it, or it was altered. */
export class SecretBoxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretBoxError';
  }
}

/**
 * Authenticated encryption for secrets at rest (channel webhook URLs, signing secrets, bot
 * tokens). AES-256-GCM with a random 12-byte IV per value; the key is derived with HKDF-SHA256
 * from the master secret (JWT_SECRET) and a purpose, so this key is useless for signing tokens
 * and vice versa. Each ciphertext records a key id (also HKDF-derived, so it reveals nothing of
 * the key): after JWT_SECRET changes, old values are recognised as sealed by another key
 * instead of failing as "corrupt". `aad` binds a value to its row (workspace and channel id), so
 * a ciphertext copied onto another row does not open.
 *
 * @example
 * const box = new SecretBox(config.security.jwtSecret!, 'notification-channels');
 * const sealed = box.seal('https://hooks.slack.com/services/…', `ws:${wsId}:ch:${id}`);
 * box.open(sealed, `ws:${wsId}:ch:${id}`); // the URL
 */
export class SecretBox {
  readonly keyId: string;
  readonly #key: Buffer;

  constructor(masterSecret: string, purpose: string) {
    if (!masterSecret || Buffer.byteLength(masterSecret) < 16) throw new Error('SecretBox needs a master secret of 16 bytes or more');
    this.#key = Buffer.from(hkdfSync('sha256', masterSecret, SALT, `encrypt:${purpose}`, 32));
    this.keyId = `k1-${Buffer.from(hkdfSync('sha256', masterSecret, SALT, `key-id:${purpose}`, 8)).toString('hex')}`;
  }

  seal(plaintext: string, aad: string): Sealed {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { ciphertext: Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url'), keyId: this.keyId };
  }

  open(sealed: Sealed, aad: string): string {
    if (sealed.keyId !== this.keyId) throw new SecretBoxError(`sealed with key ${sealed.keyId}, but the current key is ${this.keyId} (JWT_SECRET changed?)`);
    const raw = Buffer.from(sealed.ciphertext, 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretBoxError('ciphertext too short');
    const decipher = createDecipheriv(ALGORITHM, this.#key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretBoxError('ciphertext does not authenticate (altered, or bound to another record)');
    }
  }
}
