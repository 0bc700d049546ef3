import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, isPlaceholderSecret, loadConfig, loadConfigOrThrow } from './load.js';
import { resolveSecrets } from './secrets.js';

const strongSecret = 'q3V9x!Lr7#tP2mZ8wK4yB6nD1cF5hJ0s-extra';

// BACKUP_ENCRYPTION_KEY is required in production too (32 bytes, hex here).
const backupKey = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

describe('loadConfig', () => {
  it('gives embedded defaults for an empty environment', () => {
    const { config, problems } = loadConfig({});
    expect(problems).toEqual([]);
    expect(config.env).toBe('development');
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
    expect(config.database.url).toBeUndefined();
    expect(config.redis.url).toBeUndefined();
    expect(config.s3.endpoint).toBeUndefined();
    expect(config.publicUrl).toBe('http://localhost:8080');
  });

  it('converts typed values', () => {
    const { config, problems } = loadConfig({ PORT: '9090', S3_FORCE_PATH_STYLE: 'false', BODY_LIMIT: '2048', CORS_ORIGINS: 'https://a.example, https://b.example', REDIS_URL: 'rediss://cache:6380' });
    expect(problems).toEqual([]);
    expect(config.port).toBe(9090);
    expect(config.s3.forcePathStyle).toBe(false);
    expect(config.security.bodyLimit).toBe(2048);
    expect(config.security.corsOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(config.redis.tls).toBe(true);
  });

  it('collects every problem instead of stopping at the first', () => {
    const { problems } = loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', DATABASE_URL: 'not a url', REDIS_URL: 'http://wrong-scheme', TLS_CERT_FILE: '/x.pem' });
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(/PORT/);
    expect(problems.join('\n')).toMatch(/LOG_LEVEL/);
    expect(problems.join('\n')).toMatch(/DATABASE_URL/);
    expect(problems.join('\n')).toMatch(/REDIS_URL/);
    expect(problems.join('\n')).toMatch(/TLS_CERT_FILE/);
  });

  it('never echoes a secret value in a problem', () => {
    const { problems } = loadConfig({ DATABASE_URL: 'postgres//user:hunter2-secret@db' });
    expect(problems.join('\n')).not.toContain('hunter2');
  });

  it('in production, refuses a weak JWT_SECRET and missing ADMIN_EMAILS together', () => {
    const { problems } = loadConfig({ NODE_ENV: 'production', BACKUP_ENCRYPTION_KEY: backupKey, DATABASE_URL: 'postgres://db/siq', JWT_SECRET: 'changeme' });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/ADMIN_EMAILS/);
    expect(problems[1]).toMatch(/JWT_SECRET/);
    expect(() => loadConfigOrThrow({ NODE_ENV: 'production', BACKUP_ENCRYPTION_KEY: backupKey, DATABASE_URL: 'postgres://db/siq', JWT_SECRET: 'changeme' })).toThrow(ConfigError);
  });

  it('in production, requires DATABASE_URL and JWT_SECRET and refuses long placeholders', () => {
    const missing = loadConfig({ NODE_ENV: 'production', ADMIN_EMAILS: 'a@example.com' }).problems;
    expect(missing.some((p) => p.startsWith('DATABASE_URL'))).toBe(true);
    expect(missing.some((p) => p.startsWith('JWT_SECRET'))).toBe(true);
    expect(missing.some((p) => p.startsWith('BACKUP_ENCRYPTION_KEY'))).toBe(true);
    const padded = loadConfig({ NODE_ENV: 'production', ADMIN_EMAILS: 'a@example.com', BACKUP_ENCRYPTION_KEY: backupKey, DATABASE_URL: 'postgres://db/x', JWT_SECRET: 'changeme-changeme-changeme-changeme' }).problems;
    expect(padded).toEqual([expect.stringMatching(/placeholder/)]);
  });

  it('accepts a complete production configuration', () => {
    const result = loadConfig({ NODE_ENV: 'production', ADMIN_EMAILS: 'Lead@Example.com, bad-address', BACKUP_ENCRYPTION_KEY: backupKey, DATABASE_URL: 'postgres://db/x', JWT_SECRET: strongSecret });
    expect(result.problems).toEqual([expect.stringMatching(/ADMIN_EMAILS has invalid addresses: bad-address/)]);
    const ok = loadConfig({ NODE_ENV: 'production', ADMIN_EMAILS: 'Lead@Example.com', BACKUP_ENCRYPTION_KEY: backupKey, DATABASE_URL: 'postgres://db/x', JWT_SECRET: strongSecret, S3_ENDPOINT: 'http://minio:9000', S3_ACCESS_KEY: 'k', S3_SECRET_KEY: 's', REDIS_URL: 'redis://r:6379' });
    expect(ok.problems).toEqual([]);
    expect(ok.warnings).toEqual([]);
    expect(ok.config.security.adminEmails).toEqual(['lead@example.com']);
    expect(ok.config.host).toBe('0.0.0.0');
  });

  it('treats production-only rules as warnings in development', () => {
    const { problems, warnings } = loadConfig({ JWT_SECRET: 'short' });
    expect(problems).toEqual([]);
    expect(warnings).toEqual([expect.stringMatching(/JWT_SECRET is too short/)]);
  });

  it.each([
    ['changeme', true], ['secret', true], ['aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', true], ['your-secret-key-here-please-change', true],
    ['supersecretsupersecretsupersecret1', true], [strongSecret, false],
  ])('isPlaceholderSecret(%s) = %s', (value, expected) => {
    expect(isPlaceholderSecret(value)).toBe(expected);
  });
});

describe('resolveSecrets', () => {
  it('generates a development JWT secret once and keeps it in DATA_DIR', () => {
    const dir = mkdtempSync(join(tmpdir(), 'siq-secrets-'));
    try {
      const { config } = loadConfig({ DATA_DIR: dir });
      const first = resolveSecrets(config);
      const second = resolveSecrets(loadConfig({ DATA_DIR: dir }).config);
      expect(first.security.jwtSecret).toBeDefined();
      expect(Buffer.byteLength(first.security.jwtSecret!)).toBeGreaterThanOrEqual(32);
      expect(second.security.jwtSecret).toBe(first.security.jwtSecret);
      expect(statSync(join(dir, 'secrets.json')).mode & 0o077).toBe(0);
      expect(JSON.parse(readFileSync(join(dir, 'secrets.json'), 'utf8')).jwtSecret).toBe(first.security.jwtSecret);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps a configured secret', () => {
    const { config } = loadConfig({ JWT_SECRET: strongSecret, DATA_DIR: '/nonexistent/never-written' });
    expect(resolveSecrets(config).security.jwtSecret).toBe(strongSecret);
  });
});
