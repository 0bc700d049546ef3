import { CronExpressionParser } from 'cron-parser';
import { Value } from 'typebox/value';
import { settingsSchema, type Settings, type SettingName } from './schema.js';
import { parseLimits } from '../http/rate-limit.js';
import { readPackageVersion } from './version.js';

export type Environment = Settings['NODE_ENV'];

/** The typed configuration every part of the platform is built from. */
export interface Config {
  env: Environment;
  isProduction: boolean;
  version: string;
  host: string;
  port: number;
  publicUrl: string;
  dataDir: string;
  shutdownTimeoutMs: number;
  database: {
    url?: string;
    poolSize: number;
    connectTimeoutMs: number;
    idleTimeoutMs: number;
    statementTimeoutMs: number;
    sslmode?: 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
    sslCaFile?: string;
  };
  redis: { url?: string; password?: string; tls: boolean; tlsCaFile?: string; keyPrefix: string };
  s3: {
    endpoint?: string;
    region: string;
    accessKey?: string;
    secretKey?: string;
    bucketPrefix: string;
    forcePathStyle: boolean;
  };
  security: {
    /** Undefined only before `resolveSecrets` ran (development without JWT_SECRET). */
    jwtSecret?: string;
    adminEmails: string[];
    corsOrigins: string[];
    bodyLimit: number;
    tls?: { certFile: string; keyFile: string };
    trustProxy: boolean;
    rateLimits: string;
    accessTokenTtlSeconds: number;
    refreshTokenTtlDays: number;
  };
  smtp: { url?: string; from: string };
  ingest: {
    queueEvents: number;
    batchEvents: number;
    syslog?: { workspaceId: string; udpPort: number; tcpPort: number; tlsPort: number };
    jsonl?: { workspaceId: string; tcpPort: number; udpPort: number };
    retentionDays: number;
    maxBytes: number;
    retentionIntervalMinutes: number;
  };
  uploads: {
    /** Default storage quota of a workspace in bytes. */
    quotaBytes: number;
    /** Largest file per upload purpose, in bytes. */
    maxBytes: { logo: number; attachment: number; evidence: number };
    signedUrlSeconds: number;
  };
  /** Archive-and-purge of append-only history (days; 0 keeps forever) and database maintenance. */
  lifecycle: {
    auditDays: number;
    policyAuditDays: number;
    securityEventsDays: number;
    historyDays: number;
    intervalMinutes: number;
    maintenanceIntervalMinutes: number;
  };
  detection: {
    /** A YAML file that adds to or replaces entries of the built-in logsource mapping. */
    logsourcesFile?: string;
    /** Committed events waiting for detection before ingestion pushes back. */
    backlogEvents: number;
  };
  backup: {
    /** Cron expression in UTC, or null when the schedule is off. */
    schedule: string | null;
    /** Undefined only before `resolveSecrets` ran (development without BACKUP_ENCRYPTION_KEY). */
    encryptionKey?: string;
    keyId: string;
    previousKeys: string;
    retention: { kind: 'gfs'; daily: number; weekly: number; monthly: number } | { kind: 'days'; days: number };
    localDir?: string;
  };
  log: {
    level: Settings['LOG_LEVEL'];
    lokiUrl?: string;
    logstash?: { host: string; port: number; protocol: 'tcp' | 'udp' };
    shipBuffer: number;
  };
}

export interface ConfigResult {
  config: Config;
  /** Problems that stop the process in production (and are errors in every environment when marked fatal). */
  problems: string[];
  /** Things worth fixing that do not stop a development start. */
  warnings: string[];
}

/** Raised by `loadConfigOrThrow`: one message listing every problem. */
export class ConfigError extends Error {
  readonly code = 'SIQ_CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  - ${p}`).join('\n')}\nRun \`sentineliq doctor\` for how to fix each one.`);
    this.name = 'ConfigError';
  }
}

const PLACEHOLDER_WORDS = [
  'secret', 'change', 'changeme', 'changethis', 'password', 'jwt', 'key', 'your', 'my', 'super', 'default',
  'example', 'test', 'development', 'dev', 'please', 'replace', 'here', 'placeholder', 'token', 'admin', 'me', 'this', 'xxx',
];

/**
 * True when a secret is a known placeholder, even padded or repeated to pass the length rule:
 * made only of placeholder words, digits and separators, or with too few distinct characters.
 */
export function isPlaceholderSecret(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (new Set(v).size < 8) return true;
  let rest = v.replace(/[^a-z]/g, '');
  for (const word of [...PLACEHOLDER_WORDS].sort((a, b) => b.length - a.length)) rest = rest.replaceAll(word, '');
  return rest.length === 0;
}

const EMAIL = /^[^\s@,;<>]+@[^\s@,;<>]+\.[^\s@,;<>]+$/;

function isBackupKey(value: string): boolean {
  const v = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(v)) return true;
  return /^[A-Za-z0-9+/_-]+={0,2}$/.test(v) && Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64').length === 32;
}

function cronProblem(expression: string): string | null {
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC' });
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

function list(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

function describeTypeError(name: string, raw: unknown, schema: Record<string, unknown>): string {
  const shown = schema.secret ? '(value hidden)' : JSON.stringify(raw);
  if (Array.isArray(schema.enum)) return `${name} must be one of ${schema.enum.join(', ')}; got ${shown}.`;
  if (schema.format === 'uri') return `${name} is not a valid URL; got ${shown}.`;
  if (schema.type === 'integer') {
    const range = [schema.minimum !== undefined ? `≥ ${schema.minimum}` : '', schema.maximum !== undefined ? `≤ ${schema.maximum}` : ''].filter(Boolean).join(' and ');
    return `${name} must be a whole number${range ? ` ${range}` : ''}; got ${shown}.`;
  }
  if (schema.type === 'boolean') return `${name} must be true or false; got ${shown}.`;
  if (schema.pattern) return `${name} must match ${schema.pattern}; got ${shown}.`;
  return `${name} is invalid; got ${shown}.`;
}

function isValidUrl(value: string, protocols: string[]): boolean {
  try {
    const u = new URL(value);
    return protocols.includes(u.protocol) && u.hostname.length > 0;
  } catch {
    return false;
  }
}

/**
 * Reads settings from an environment (process.env by default), converts and checks them, and
 * collects every problem instead of stopping at the first. Pure: no files are read or written.
 *
 * @example
 * const { config, problems } = loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'changeme' });
 * // problems: [ 'DATABASE_URL is required in production …', 'JWT_SECRET …', 'ADMIN_EMAILS …' ]
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): ConfigResult {
  const problems: string[] = [];
  const warnings: string[] = [];
  const raw: Record<string, unknown> = {};
  for (const name of Object.keys(settingsSchema.properties)) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') raw[name] = value.trim();
  }

  const converted = Value.Default(settingsSchema, Value.Convert(settingsSchema, structuredClone(raw))) as Record<string, unknown>;
  const props = settingsSchema.properties as unknown as Record<string, Record<string, unknown>>;
  const badFields = new Set<string>();
  for (const error of Value.Errors(settingsSchema, converted)) {
    const name = error.instancePath.replace(/^\//, '').split('/')[0] ?? '';
    if (!name || badFields.has(name)) continue;
    badFields.add(name);
    problems.push(describeTypeError(name, raw[name], props[name] ?? {}));
  }
  // Fall back to defaults for fields that failed, so the rest of the checks still run.
  for (const name of badFields) {
    const fallback = props[name]?.default;
    if (fallback === undefined) delete converted[name];
    else converted[name] = fallback;
  }
  const s = converted as Settings;

  const urlChecks: Array<[SettingName, string[]]> = [
    ['DATABASE_URL', ['postgres:', 'postgresql:']],
    ['REDIS_URL', ['redis:', 'rediss:']],
    ['S3_ENDPOINT', ['http:', 'https:']],
    ['LOKI_URL', ['http:', 'https:']],
    ['PUBLIC_URL', ['http:', 'https:']],
    ['SMTP_URL', ['smtp:', 'smtps:']],
  ];
  for (const [name, protocols] of urlChecks) {
    const value = s[name] as string | undefined;
    if (value !== undefined && !badFields.has(name) && !isValidUrl(value, protocols)) {
      problems.push(`${name} is not a valid ${protocols.map((p) => p.replace(':', '://')).join(' or ')} URL.`);
      badFields.add(name);
    }
  }

  const isProduction = s.NODE_ENV === 'production';
  const strict: string[] = []; // problems in production, warnings elsewhere

  if (!s.DATABASE_URL && !badFields.has('DATABASE_URL')) {
    if (isProduction) problems.push('DATABASE_URL is required in production (the embedded PGlite database is for one machine and development).');
  }

  if (s.JWT_SECRET === undefined) {
    if (isProduction) problems.push('JWT_SECRET is required in production: set it to 32 or more random bytes, e.g. `openssl rand -base64 48`.');
  } else if (Buffer.byteLength(s.JWT_SECRET) < 32) {
    strict.push(`JWT_SECRET is too short (${Buffer.byteLength(s.JWT_SECRET)} bytes; needs 32 or more): generate one with \`openssl rand -base64 48\`.`);
  } else if (isPlaceholderSecret(s.JWT_SECRET)) {
    strict.push('JWT_SECRET is a known placeholder value: generate a random one with `openssl rand -base64 48`.');
  }

  const adminEmails = list(s.ADMIN_EMAILS);
  const invalidEmails = adminEmails.filter((e) => !EMAIL.test(e));
  if (invalidEmails.length > 0) strict.push(`ADMIN_EMAILS has invalid addresses: ${invalidEmails.join(', ')}.`);
  const validEmails = adminEmails.filter((e) => EMAIL.test(e)).map((e) => e.toLowerCase());
  if (validEmails.length === 0 && isProduction) problems.push('ADMIN_EMAILS must contain at least one valid email address in production (the first platform admins).');

  const backupSchedule = s.BACKUP_SCHEDULE.trim().toLowerCase() === 'off' ? null : s.BACKUP_SCHEDULE.trim();
  if (backupSchedule !== null) {
    const problem = cronProblem(backupSchedule);
    if (problem) problems.push(`BACKUP_SCHEDULE is not a valid cron expression (${problem}); e.g. \`0 2 * * *\` for 02:00 UTC daily, or \`off\`.`);
  }
  if (s.BACKUP_ENCRYPTION_KEY === undefined) {
    if (isProduction) problems.push('BACKUP_ENCRYPTION_KEY is required in production: 32 random bytes, e.g. `openssl rand -base64 32`. Keep a copy outside the platform.');
  } else if (!isBackupKey(s.BACKUP_ENCRYPTION_KEY)) {
    problems.push('BACKUP_ENCRYPTION_KEY must be 32 bytes written as 64 hex characters or base64: generate one with `openssl rand -base64 32`.');
  }
  for (const entry of list(s.BACKUP_PREVIOUS_KEYS ?? '')) {
    const at = entry.indexOf(':');
    if (at <= 0 || !isBackupKey(entry.slice(at + 1))) problems.push(`BACKUP_PREVIOUS_KEYS has an entry that is not \`id:key\` with a 32-byte key (entry ${at > 0 ? `"${entry.slice(0, at)}"` : 'without an id'}).`);
  }

  if (Boolean(s.TLS_CERT_FILE) !== Boolean(s.TLS_KEY_FILE)) problems.push('TLS_CERT_FILE and TLS_KEY_FILE must be set together.');
  if (s.S3_ENDPOINT && (!s.S3_ACCESS_KEY || !s.S3_SECRET_KEY)) problems.push('S3_ENDPOINT is set but S3_ACCESS_KEY or S3_SECRET_KEY is missing.');
  if (isProduction && !s.S3_ENDPOINT) warnings.push('S3_ENDPOINT is not set: files are kept on this machine\'s disk under DATA_DIR.');
  if (isProduction && !s.REDIS_URL) warnings.push('REDIS_URL is not set: rate limits, locks and caches are per process, so run one process only.');
  const corsOrigins = list(s.CORS_ORIGINS);
  for (const origin of corsOrigins) {
    if (origin !== '*' && !isValidUrl(origin, ['http:', 'https:'])) problems.push(`CORS_ORIGINS has an invalid origin: ${origin}.`);
  }
  try {
    parseLimits(s.RATE_LIMITS);
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (isProduction && corsOrigins.includes('*')) problems.push('CORS_ORIGINS must not be * in production: list the console\'s origins.');

  if (isProduction) problems.push(...strict);
  else warnings.push(...strict);

  const host = s.HOST ?? (isProduction ? '0.0.0.0' : '127.0.0.1');
  const config: Config = {
    env: s.NODE_ENV,
    isProduction,
    version: readPackageVersion(),
    host,
    port: s.PORT,
    publicUrl: (s.PUBLIC_URL ?? `http://localhost:${s.PORT}`).replace(/\/+$/, ''),
    dataDir: s.DATA_DIR,
    shutdownTimeoutMs: s.SHUTDOWN_TIMEOUT_MS,
    database: {
      url: s.DATABASE_URL,
      poolSize: s.DATABASE_POOL_SIZE,
      connectTimeoutMs: s.DATABASE_CONNECT_TIMEOUT_MS,
      idleTimeoutMs: s.DATABASE_IDLE_TIMEOUT_MS,
      statementTimeoutMs: s.DATABASE_STATEMENT_TIMEOUT_MS,
      sslmode: s.DATABASE_SSLMODE,
      sslCaFile: s.DATABASE_SSL_CA_FILE,
    },
    redis: {
      url: s.REDIS_URL,
      password: s.REDIS_PASSWORD,
      tls: s.REDIS_TLS || (s.REDIS_URL?.startsWith('rediss:') ?? false),
      tlsCaFile: s.REDIS_TLS_CA_FILE,
      keyPrefix: s.REDIS_KEY_PREFIX,
    },
    s3: {
      endpoint: s.S3_ENDPOINT,
      region: s.S3_REGION,
      accessKey: s.S3_ACCESS_KEY,
      secretKey: s.S3_SECRET_KEY,
      bucketPrefix: s.S3_BUCKET_PREFIX,
      forcePathStyle: s.S3_FORCE_PATH_STYLE,
    },
    security: {
      jwtSecret: s.JWT_SECRET,
      adminEmails: validEmails,
      corsOrigins,
      bodyLimit: s.BODY_LIMIT,
      tls: s.TLS_CERT_FILE && s.TLS_KEY_FILE ? { certFile: s.TLS_CERT_FILE, keyFile: s.TLS_KEY_FILE } : undefined,
      trustProxy: s.TRUST_PROXY,
      rateLimits: s.RATE_LIMITS,
      accessTokenTtlSeconds: s.ACCESS_TOKEN_TTL_SECONDS,
      refreshTokenTtlDays: s.REFRESH_TOKEN_TTL_DAYS,
    },
    smtp: { url: s.SMTP_URL, from: s.SMTP_FROM },
    ingest: {
      queueEvents: s.INGEST_QUEUE_EVENTS,
      batchEvents: s.INGEST_BATCH_EVENTS,
      syslog: s.SYSLOG_WORKSPACE_ID ? { workspaceId: s.SYSLOG_WORKSPACE_ID, udpPort: s.SYSLOG_UDP_PORT, tcpPort: s.SYSLOG_TCP_PORT, tlsPort: s.SYSLOG_TLS_PORT } : undefined,
      retentionDays: s.EVENTS_RETENTION_DAYS,
      maxBytes: s.EVENTS_MAX_BYTES,
      retentionIntervalMinutes: s.RETENTION_INTERVAL_MINUTES,
      jsonl: s.JSONL_WORKSPACE_ID ? { workspaceId: s.JSONL_WORKSPACE_ID, tcpPort: s.JSONL_TCP_PORT, udpPort: s.JSONL_UDP_PORT } : undefined,
    },
    uploads: {
      quotaBytes: s.WORKSPACE_STORAGE_QUOTA_BYTES,
      maxBytes: { logo: s.UPLOAD_LOGO_MAX_BYTES, attachment: s.UPLOAD_ATTACHMENT_MAX_BYTES, evidence: s.UPLOAD_EVIDENCE_MAX_BYTES },
      signedUrlSeconds: s.UPLOAD_SIGNED_URL_SECONDS,
    },
    lifecycle: {
      auditDays: s.AUDIT_RETENTION_DAYS,
      policyAuditDays: s.POLICY_AUDIT_RETENTION_DAYS,
      securityEventsDays: s.SECURITY_EVENTS_RETENTION_DAYS,
      historyDays: s.HISTORY_RETENTION_DAYS,
      intervalMinutes: s.LIFECYCLE_INTERVAL_MINUTES,
      maintenanceIntervalMinutes: s.MAINTENANCE_INTERVAL_MINUTES,
    },
    detection: {
      logsourcesFile: s.DETECTION_LOGSOURCES_FILE,
      backlogEvents: s.DETECTION_BACKLOG_EVENTS,
    },
    backup: {
      schedule: backupSchedule,
      encryptionKey: s.BACKUP_ENCRYPTION_KEY,
      keyId: s.BACKUP_ENCRYPTION_KEY_ID,
      previousKeys: s.BACKUP_PREVIOUS_KEYS ?? '',
      retention: s.BACKUP_RETENTION_DAYS !== undefined
        ? { kind: 'days', days: s.BACKUP_RETENTION_DAYS }
        : { kind: 'gfs', daily: s.BACKUP_KEEP_DAILY, weekly: s.BACKUP_KEEP_WEEKLY, monthly: s.BACKUP_KEEP_MONTHLY },
      localDir: s.BACKUP_LOCAL_DIR,
    },
    log: {
      level: s.LOG_LEVEL,
      lokiUrl: s.LOKI_URL,
      logstash: s.LOGSTASH_HOST ? { host: s.LOGSTASH_HOST, port: s.LOGSTASH_PORT, protocol: s.LOGSTASH_PROTOCOL } : undefined,
      shipBuffer: s.LOG_SHIP_BUFFER,
    },
  };
  return { config, problems, warnings };
}

/**
 * Like `loadConfig`, but throws one `ConfigError` listing every problem. In development only
 * errors that make the settings unusable (malformed values, contradictions) are problems; the
 * production-only rules are warnings there.
 */
export function loadConfigOrThrow(env: Record<string, string | undefined> = process.env): ConfigResult {
  const result = loadConfig(env);
  if (result.problems.length > 0) throw new ConfigError(result.problems);
  return result;
}
