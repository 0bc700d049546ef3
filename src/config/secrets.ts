import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './load.js';

interface StoredSecrets {
  jwtSecret?: string;
  backupKey?: string;
}

/**
 * Fills in secrets that development may leave unset: a JWT secret is generated once and kept in
 * DATA_DIR/secrets.json (mode 0600), so tokens and signed links survive restarts. Production
 * never gets here without JWT_SECRET (the config check refuses to start).
 */
export function resolveSecrets(config: Config): Config {
  if (config.security.jwtSecret && config.backup.encryptionKey) return config;
  if (config.isProduction) throw new Error(config.security.jwtSecret ? 'BACKUP_ENCRYPTION_KEY is required in production' : 'JWT_SECRET is required in production');
  const file = join(config.dataDir, 'secrets.json');
  let stored: StoredSecrets = {};
  try {
    stored = JSON.parse(readFileSync(file, 'utf8')) as StoredSecrets;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`Cannot read ${file}: ${(err as Error).message}`);
  }
  const missing = (!config.security.jwtSecret && !stored.jwtSecret) || (!config.backup.encryptionKey && !stored.backupKey);
  if (missing) {
    stored.jwtSecret ??= randomBytes(48).toString('base64url');
    stored.backupKey ??= randomBytes(32).toString('base64');
    mkdirSync(config.dataDir, { recursive: true });
    writeFileSync(file, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600 });
  }
  return {
    ...config,
    security: { ...config.security, jwtSecret: config.security.jwtSecret ?? stored.jwtSecret },
    backup: { ...config.backup, encryptionKey: config.backup.encryptionKey ?? stored.backupKey },
  };
}
