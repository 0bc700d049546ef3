import { Type, type Static } from 'typebox';

/**
 * Every setting the platform reads, one place. Each entry's `description` is the user
 * documentation: README.md's settings table is generated from it (`npm run docs:config`) and a
 * test fails when the table is stale. `secret: true` marks values that are never printed.
 * Values come from environment variables (strings) and are converted to the declared type.
 */
const secret = { secret: true } as const;

export const settingsSchema = Type.Object({
  // --- runtime
  NODE_ENV: Type.Enum(['development', 'production', 'test'], {
    default: 'development',
    group: 'Runtime',
    description: 'Runtime environment. `production` turns every configuration warning into a start-up error.',
  }),
  HOST: Type.Optional(Type.String({
    group: 'Runtime',
    description: 'Address the HTTP server binds to. Default: `127.0.0.1` in development, `0.0.0.0` in production.',
  })),
  PORT: Type.Integer({ default: 8080, minimum: 1, maximum: 65535, group: 'Runtime', description: 'HTTP port.' }),
  PUBLIC_URL: Type.Optional(Type.String({
    format: 'uri', group: 'Runtime',
    description: 'The address users reach the platform at, used in links (signed file URLs, invitations). Default: `http://localhost:PORT`.',
  })),
  DATA_DIR: Type.String({
    default: './data', group: 'Runtime',
    description: 'Directory for embedded data: the PGlite database, local object storage and generated development secrets.',
  }),
  SHUTDOWN_TIMEOUT_MS: Type.Integer({
    default: 10000, minimum: 100, group: 'Runtime',
    description: 'On SIGTERM/SIGINT, how long in-flight requests may take to finish before the process exits anyway.',
  }),

  // --- database
  DATABASE_URL: Type.Optional(Type.String({
    format: 'uri', group: 'Database', ...secret,
    description: 'PostgreSQL 15+ connection URL (`postgres://user:pass@host:5432/db?sslmode=require`). Unset: embedded PGlite in DATA_DIR. Required in production.',
  })),
  DATABASE_POOL_SIZE: Type.Integer({ default: 10, minimum: 1, maximum: 1000, group: 'Database', description: 'Maximum connections in the PostgreSQL pool.' }),
  DATABASE_CONNECT_TIMEOUT_MS: Type.Integer({ default: 5000, minimum: 100, group: 'Database', description: 'How long to wait for a new PostgreSQL connection.' }),
  DATABASE_IDLE_TIMEOUT_MS: Type.Integer({ default: 30000, minimum: 0, group: 'Database', description: 'Idle time after which a pooled connection is closed.' }),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({ default: 30000, minimum: 0, group: 'Database', description: 'Server-side statement timeout for every pooled connection (0 = none).' }),
  DATABASE_SSLMODE: Type.Optional(Type.Enum(['disable', 'prefer', 'require', 'verify-ca', 'verify-full'], {
    group: 'Database',
    description: 'TLS mode for PostgreSQL, as libpq understands it. Overrides `sslmode` in DATABASE_URL.',
  })),
  DATABASE_SSL_CA_FILE: Type.Optional(Type.String({ group: 'Database', description: 'CA certificate (PEM) to verify the PostgreSQL server with (verify-ca, verify-full).' })),

  // --- cache
  REDIS_URL: Type.Optional(Type.String({
    format: 'uri', group: 'Cache', ...secret,
    description: 'Redis 7 URL (`redis://` or `rediss://` for TLS). Unset: an in-process cache (one process only).',
  })),
  REDIS_PASSWORD: Type.Optional(Type.String({ group: 'Cache', ...secret, description: 'Redis password, when it is not in REDIS_URL.' })),
  REDIS_TLS: Type.Boolean({ default: false, group: 'Cache', description: 'Connect to Redis over TLS (implied by `rediss://`).' }),
  REDIS_TLS_CA_FILE: Type.Optional(Type.String({ group: 'Cache', description: 'CA certificate (PEM) to verify the Redis server with.' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'siq:', group: 'Cache', description: 'Prefix of every key and channel the platform uses in Redis.' }),

  // --- object storage
  S3_ENDPOINT: Type.Optional(Type.String({
    format: 'uri', group: 'Object storage',
    description: 'S3-compatible endpoint (MinIO, AWS S3, …). Unset: files are kept under DATA_DIR/objects.',
  })),
  S3_REGION: Type.String({ default: 'us-east-1', group: 'Object storage', description: 'S3 region.' }),
  S3_ACCESS_KEY: Type.Optional(Type.String({ group: 'Object storage', ...secret, description: 'S3 access key id.' })),
  S3_SECRET_KEY: Type.Optional(Type.String({ group: 'Object storage', ...secret, description: 'S3 secret access key.' })),
  S3_BUCKET_PREFIX: Type.String({
    default: 'sentineliq', pattern: '^[a-z0-9][a-z0-9-]{1,40}$', group: 'Object storage',
    description: 'Bucket names are `<prefix>-<NODE_ENV>-files`, `-backups` and `-archives` (the cold tier of the event store).',
  }),
  S3_FORCE_PATH_STYLE: Type.Boolean({ default: true, group: 'Object storage', description: 'Path-style addressing (needed by MinIO and most self-hosted stores).' }),

  // --- security
  JWT_SECRET: Type.Optional(Type.String({
    group: 'Security', ...secret,
    description: 'Key that signs access tokens and signed links: 32 bytes or more. Required in production; in development one is generated once and kept in DATA_DIR.',
  })),
  ADMIN_EMAILS: Type.String({
    default: '', group: 'Security',
    description: 'Comma-separated addresses that become platform admins on first run. Production needs at least one.',
  }),
  CORS_ORIGINS: Type.String({
    default: '', group: 'Security',
    description: 'Comma-separated origins allowed to call the API from a browser. Empty: no cross-origin access.',
  }),
  BODY_LIMIT: Type.Integer({ default: 10485760, minimum: 1024, group: 'Security', description: 'Largest request body accepted, in bytes (413 above it).' }),
  TLS_CERT_FILE: Type.Optional(Type.String({ group: 'Security', description: 'Certificate chain (PEM) to serve HTTPS with. Needs TLS_KEY_FILE.' })),
  TLS_KEY_FILE: Type.Optional(Type.String({ group: 'Security', description: 'Private key (PEM) for TLS_CERT_FILE.' })),
  RATE_LIMITS: Type.String({
    default: '', group: 'Security',
    description: 'Overrides of the named rate limits, e.g. `workspace-create=5/1h,invitation=10/1m,sign-in=20/15m,workspace-update=30/1m,api-key=1200/1m` (the defaults).',
  }),
  ACCESS_TOKEN_TTL_SECONDS: Type.Integer({ default: 900, minimum: 60, maximum: 86400, group: 'Security', description: 'Lifetime of an access token (JWT).' }),
  REFRESH_TOKEN_TTL_DAYS: Type.Integer({ default: 30, minimum: 1, maximum: 365, group: 'Security', description: 'Lifetime of a refresh token; each use rotates it.' }),
  SMTP_URL: Type.Optional(Type.String({
    format: 'uri', group: 'Security', ...secret,
    description: 'SMTP server for invitation emails (`smtp://user:pass@host:587`, `smtps://…`). Unset: invitation links are written to the log.',
  })),
  SMTP_FROM: Type.String({ default: 'SentinelIQ <no-reply@localhost>', group: 'Security', description: 'Sender address of the platform\'s emails.' }),
  TRUST_PROXY: Type.Boolean({ default: false, group: 'Security', description: 'Trust X-Forwarded-* headers (set when behind a load balancer).' }),

  // --- uploads
  WORKSPACE_STORAGE_QUOTA_BYTES: Type.Integer({ default: 10737418240, minimum: 0, group: 'Uploads', description: 'Storage quota of a workspace (uploads, logos, evidence) in bytes, unless an admin set one for it (default 10 GiB).' }),
  UPLOAD_LOGO_MAX_BYTES: Type.Integer({ default: 5242880, minimum: 1024, group: 'Uploads', description: 'Largest workspace logo accepted, in bytes (413 SIQ_UPLOAD_TOO_LARGE above it).' }),
  UPLOAD_ATTACHMENT_MAX_BYTES: Type.Integer({ default: 104857600, minimum: 1024, group: 'Uploads', description: 'Largest attachment accepted, in bytes.' }),
  UPLOAD_EVIDENCE_MAX_BYTES: Type.Integer({ default: 5368709120, minimum: 1024, group: 'Uploads', description: 'Largest evidence file accepted, in bytes (default 5 GiB). Uploads stream, so this does not cost memory.' }),
  UPLOAD_SIGNED_URL_SECONDS: Type.Integer({ default: 300, minimum: 10, maximum: 604800, group: 'Uploads', description: 'Lifetime of the signed download links the upload API hands out.' }),

  // --- ingestion
  INGEST_QUEUE_EVENTS: Type.Integer({
    default: 50000, minimum: 100, group: 'Ingestion',
    description: 'Events accepted but not yet written, at most. Beyond it sources push back: HTTP 503/429 with Retry-After, TCP stops reading, UDP drops and counts.',
  }),
  SYSLOG_WORKSPACE_ID: Type.Optional(Type.String({
    format: 'uuid', group: 'Ingestion',
    description: 'Workspace that receives events from the syslog listeners. Unset: no syslog listener runs.',
  })),
  SYSLOG_UDP_PORT: Type.Integer({ default: 5514, minimum: 0, maximum: 65535, group: 'Ingestion', description: 'Syslog over UDP (RFC 3164 and 5424); 0 turns it off.' }),
  SYSLOG_TCP_PORT: Type.Integer({ default: 5514, minimum: 0, maximum: 65535, group: 'Ingestion', description: 'Syslog over TCP, newline or octet-counting framing (RFC 6587); 0 turns it off.' }),
  SYSLOG_TLS_PORT: Type.Integer({ default: 6514, minimum: 0, maximum: 65535, group: 'Ingestion', description: 'Syslog over TLS (RFC 5425), with TLS_CERT_FILE/TLS_KEY_FILE; 0 turns it off.' }),
  JSONL_WORKSPACE_ID: Type.Optional(Type.String({
    format: 'uuid', group: 'Ingestion',
    description: 'Workspace that receives JSON lines (Logstash-style `json_lines` input). Unset: no JSON-lines listener runs.',
  })),
  JSONL_TCP_PORT: Type.Integer({ default: 5000, minimum: 0, maximum: 65535, group: 'Ingestion', description: 'JSON lines over TCP; 0 turns it off.' }),
  JSONL_UDP_PORT: Type.Integer({ default: 5000, minimum: 0, maximum: 65535, group: 'Ingestion', description: 'JSON lines over UDP (one or more lines per datagram); 0 turns it off.' }),
  EVENTS_RETENTION_DAYS: Type.Integer({ default: 30, minimum: 1, maximum: 3650, group: 'Ingestion', description: 'Days events stay searchable, for workspaces that set no retention of their own; older ones are archived to object storage, then removed.' }),
  EVENTS_MAX_BYTES: Type.Integer({ default: 0, minimum: 0, group: 'Ingestion', description: 'Disk budget of the event store in bytes (0: none). Over it, the oldest days are archived and dropped first, whatever their retention.' }),
  RETENTION_INTERVAL_MINUTES: Type.Integer({ default: 60, minimum: 1, group: 'Ingestion', description: 'How often retention and archiving run (one process at a time, across all processes).' }),
  INGEST_BATCH_EVENTS: Type.Integer({ default: 5000, minimum: 1, maximum: 100000, group: 'Ingestion', description: 'Events written per COPY.' }),

  // --- data lifecycle
  AUDIT_RETENTION_DAYS: Type.Integer({ default: 90, minimum: 0, maximum: 36500, group: 'Data lifecycle', description: 'Days audit log entries stay in the database; older ones are archived to the archives bucket (verified, with an anchor that keeps the hash chain verifiable), then removed. 0 keeps them forever.' }),
  POLICY_AUDIT_RETENTION_DAYS: Type.Integer({ default: 90, minimum: 0, maximum: 36500, group: 'Data lifecycle', description: 'Days policy decisions (policy_audit_logs) stay in the database before they are archived and removed. 0 keeps them forever.' }),
  SECURITY_EVENTS_RETENTION_DAYS: Type.Integer({ default: 90, minimum: 0, maximum: 36500, group: 'Data lifecycle', description: 'Days security events stay in the database before they are archived and removed. 0 keeps them forever.' }),
  HISTORY_RETENTION_DAYS: Type.Integer({ default: 90, minimum: 0, maximum: 36500, group: 'Data lifecycle', description: 'Days alert history and incident timeline entries stay once their alert or incident is closed (or gone); older ones are archived and removed. 0 keeps them forever.' }),
  LIFECYCLE_INTERVAL_MINUTES: Type.Integer({ default: 1440, minimum: 1, maximum: 40320, group: 'Data lifecycle', description: 'How often the archive-and-purge job runs (one process at a time, across all processes).' }),
  MAINTENANCE_INTERVAL_MINUTES: Type.Integer({ default: 1440, minimum: 1, maximum: 40320, group: 'Data lifecycle', description: 'How often database maintenance runs: VACUUM (ANALYZE) of tables with many dead rows on PostgreSQL, ANALYZE on the embedded database.' }),

  // --- detection
  DETECTION_LOGSOURCES_FILE: Type.Optional(Type.String({
    group: 'Detection',
    description: 'YAML file adding to or replacing entries of the built-in Sigma logsource mapping (same format as src/modules/detect/logsources.yml; see docs/detection.md).',
  })),
  DETECTION_BACKLOG_EVENTS: Type.Integer({
    default: 100000, minimum: 1000, group: 'Detection',
    description: 'Stored events waiting for detection, at most. Beyond it ingestion pushes back (like a full ingest queue) until rules catch up.',
  }),

  // --- backups
  BACKUP_SCHEDULE: Type.String({
    default: '0 2 * * *', group: 'Backups',
    description: 'When the scheduled backup runs: a cron expression (5 fields, or 6 with seconds), in UTC. `off` disables the schedule (the CLI and admin API still work).',
  }),
  BACKUP_ENCRYPTION_KEY: Type.Optional(Type.String({
    group: 'Backups', ...secret,
    description: 'AES-256-GCM key of backups: 32 random bytes as 64 hex characters or base64 (`openssl rand -base64 32`). Required in production; in development one is generated once and kept in DATA_DIR. Keep a copy outside the platform: without it no backup can be restored.',
  })),
  BACKUP_ENCRYPTION_KEY_ID: Type.String({
    default: 'primary', pattern: '^[A-Za-z0-9._-]{1,64}$', group: 'Backups',
    description: 'Name of BACKUP_ENCRYPTION_KEY, recorded in every backup. Give a new key a new id when rotating.',
  }),
  BACKUP_PREVIOUS_KEYS: Type.Optional(Type.String({
    group: 'Backups', ...secret,
    description: 'Earlier backup keys that retained backups still need, as `id:key` pairs separated by commas (see docs/operations.md, key rotation).',
  })),
  BACKUP_RETENTION_DAYS: Type.Optional(Type.Integer({
    minimum: 1, maximum: 3650, group: 'Backups',
    description: 'Keep every verified backup younger than this many days. Set: replaces the grandfather-father-son policy (BACKUP_KEEP_*).',
  })),
  BACKUP_KEEP_DAILY: Type.Integer({ default: 7, minimum: 0, maximum: 3650, group: 'Backups', description: 'Grandfather-father-son: the newest verified backup of each of this many most recent days is kept.' }),
  BACKUP_KEEP_WEEKLY: Type.Integer({ default: 4, minimum: 0, maximum: 520, group: 'Backups', description: 'Grandfather-father-son: the newest verified backup of each of this many most recent ISO weeks is kept.' }),
  BACKUP_KEEP_MONTHLY: Type.Integer({ default: 3, minimum: 0, maximum: 240, group: 'Backups', description: 'Grandfather-father-son: the newest verified backup of each of this many most recent months is kept.' }),
  BACKUP_LOCAL_DIR: Type.Optional(Type.String({
    group: 'Backups',
    description: 'Also copy every backup (same layout as the backups bucket) into this directory, e.g. a mounted volume of another machine.',
  })),

  // --- logging
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    default: 'info', group: 'Logging', description: 'Lowest level written to stdout and shipped.',
  }),
  LOKI_URL: Type.Optional(Type.String({
    format: 'uri', group: 'Logging', ...secret,
    description: 'Ship the platform\'s own logs to this Loki base URL (`http://loki:3100`); credentials may be in the URL.',
  })),
  LOGSTASH_HOST: Type.Optional(Type.String({ group: 'Logging', description: 'Ship the platform\'s own logs to Logstash at this host, as JSON lines.' })),
  LOGSTASH_PORT: Type.Integer({ default: 5000, minimum: 1, maximum: 65535, group: 'Logging', description: 'Logstash port.' }),
  LOGSTASH_PROTOCOL: Type.Enum(['tcp', 'udp'], { default: 'tcp', group: 'Logging', description: 'Transport to Logstash.' }),
  LOG_SHIP_BUFFER: Type.Integer({
    default: 10000, minimum: 10, group: 'Logging',
    description: 'Log lines kept per sink while it is unreachable; older lines are dropped beyond it and counted in /metrics.',
  }),
});

export type Settings = Static<typeof settingsSchema>;
export type SettingName = keyof Settings;
