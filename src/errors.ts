/**
 * The error catalogue. Every error the platform reports to a caller has a stable code
 * (`SIQ_…`), an HTTP status and a message that says what to do. Tests assert codes, never text.
 * docs/errors.md is generated from this table (`npm run docs:config`).
 */
export const errorCatalogue = {
  SIQ_BAD_REQUEST: { status: 400, message: 'The request is malformed. Check the body and parameters against the API documentation at /api/docs.' },
  SIQ_VALIDATION: { status: 400, message: 'The request failed validation. The details name each field that is wrong.' },
  SIQ_UNAUTHENTICATED: { status: 401, message: 'Sign in or send a valid API key.' },
  SIQ_FORBIDDEN: { status: 403, message: 'You are not allowed to do this. Ask a workspace admin for the right role.' },
  SIQ_NOT_FOUND: { status: 404, message: 'Nothing exists at this address. Check the URL and the ids in it.' },
  SIQ_ROUTE_NOT_FOUND: { status: 404, message: 'No API route matches this method and path. See /api/docs for the routes that exist.' },
  SIQ_METHOD_NOT_ALLOWED: { status: 405, message: 'This route does not accept that HTTP method.' },
  SIQ_CONFLICT: { status: 409, message: 'The request conflicts with the current state. Reload and try again.' },
  SIQ_PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is larger than the server accepts (BODY_LIMIT). Send smaller batches.' },
  SIQ_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The Content-Type of the request is not supported by this route.' },
  SIQ_RATE_LIMITED: { status: 429, message: 'Too many requests. Wait for the time given in Retry-After and try again.' },
  SIQ_INTERNAL: { status: 500, message: 'Something went wrong on the server. The request id identifies the failure in the server log.' },
  SIQ_UNAVAILABLE: { status: 503, message: 'The service is temporarily unavailable. Retry after the time given in Retry-After.' },
  SIQ_SHUTTING_DOWN: { status: 503, message: 'The server is shutting down. Retry against another instance or in a few seconds.' },
  SIQ_DEPENDENCY_DOWN: { status: 503, message: 'A dependency (database, cache or object store) is unreachable. See /health for which one.' },
  SIQ_CONFIG_INVALID: { status: 500, message: 'The configuration is invalid. Run `sentineliq doctor` to see each problem and how to fix it.' },
  SIQ_MIGRATION_CHANGED: { status: 500, message: 'An applied migration was edited after it ran. Restore the original file and add a new migration instead.' },
  SIQ_MIGRATION_FAILED: { status: 500, message: 'A database migration failed. The migration named in the details was rolled back; fix it and start again.' },
  SIQ_OBJECT_NOT_FOUND: { status: 404, message: 'The stored file does not exist or was deleted.' },
  SIQ_OBJECT_KEY_INVALID: { status: 400, message: 'The object key is not allowed: use relative keys of letters, digits and - _ . / without "..".' },
  SIQ_SIGNED_URL_INVALID: { status: 403, message: 'The signed link is invalid or was altered. Ask for a new link.' },
  SIQ_INVALID_CREDENTIALS: { status: 401, message: 'The email or password is wrong.' },
  SIQ_ACCOUNT_LOCKED: { status: 423, message: 'The account is locked after repeated failed sign-ins. Wait for the time given in Retry-After, or ask an admin.' },
  SIQ_TOKEN_INVALID: { status: 401, message: 'The token is invalid or expired. Sign in again.' },
  SIQ_TOKEN_REUSED: { status: 401, message: 'This refresh token was already used, so every session of that sign-in was revoked. Sign in again.' },
  SIQ_WEAK_PASSWORD: { status: 400, message: 'The password does not meet the password policy: 12 to 256 characters, not a common password, not your email.' },
  SIQ_SETUP_TOKEN_INVALID: { status: 400, message: 'The setup token is invalid, used or expired. Restart the platform to print a new one.' },
  SIQ_INVITATION_INVALID: { status: 400, message: 'The invitation is invalid, used, revoked or expired. Ask for a new invitation.' },
  SIQ_LAST_OWNER: { status: 409, message: 'A workspace needs at least one owner. Make someone else owner first.' },
  SIQ_API_KEY_SCOPE: { status: 403, message: 'The API key lacks the scope this route needs.' },
  SIQ_POLICY_INVALID: { status: 400, message: 'The policy is invalid. The details name each problem.' },
  SIQ_INGEST_BUSY: { status: 503, message: 'The ingest queue is full. Retry after the time given in Retry-After; nothing of this request was stored.' },
  SIQ_EVENT_INVALID: { status: 400, message: 'The event is not valid. The per-item errors say which and why; the other events were stored.' },
  SIQ_QUERY_SYNTAX: { status: 400, message: 'The search query has a syntax error at the position given in the details.' },
  SIQ_ARCHIVE_NOT_FOUND: { status: 404, message: 'No archive exists for that day (and workspace). List archives with `sentineliq events archives`.' },
  SIQ_ARCHIVE_CORRUPT: { status: 500, message: 'The archive does not match its manifest (checksum or count); nothing was restored from it.' },
  SIQ_SIGNED_URL_EXPIRED: { status: 403, message: 'The signed link has expired. Ask for a new link.' },
  SIQ_ALERT_TRANSITION: { status: 409, message: 'The alert cannot move from its current status to the one requested. See docs/alerts.md for the allowed transitions.' },
  SIQ_ALERT_ASSIGNEE: { status: 400, message: 'Alerts can only be assigned to members of their workspace. Invite the person first.' },
  SIQ_NOTIFY_CHANNEL_INVALID: { status: 400, message: 'The notification channel settings are invalid for its type. The details name each problem (URL scheme, missing secret, recipients, chat id).' },
  SIQ_RULE_INVALID: { status: 400, message: 'The rule is invalid. The details give the reason (stable code) and the problem; fix the rule and submit it again.' },
  SIQ_RULE_ARCHIVE_INVALID: { status: 400, message: 'The rule archive cannot be read (not a zip, too many files, or too large when unpacked).' },
  SIQ_UPLOAD_INVALID: { status: 400, message: 'The upload is malformed: send multipart/form-data with a `purpose` field (logo, attachment or evidence) before one `file` field.' },
  SIQ_UPLOAD_TYPE_NOT_ALLOWED: { status: 415, message: 'This kind of file is not allowed for this purpose. The type is read from the file\'s content, not its name; see docs/uploads.md for the allowed types.' },
  SIQ_UPLOAD_TOO_LARGE: { status: 413, message: 'The file is larger than allowed for this purpose (UPLOAD_*_MAX_BYTES); nothing was stored.' },
  SIQ_STORAGE_QUOTA_EXCEEDED: { status: 413, message: 'The workspace\'s storage quota would be exceeded; nothing was stored. Delete files or ask an admin to raise the quota.' },
  SIQ_INCIDENT_TRANSITION: { status: 409, message: 'The incident cannot move from its current status to the one requested. See docs/incidents.md for the allowed transitions.' },
  SIQ_INCIDENT_ASSIGNEE: { status: 400, message: 'Incidents and their tasks can only be assigned to members of their workspace. Invite the person first.' },
  SIQ_INCIDENT_CLOSED: { status: 409, message: 'The incident is closed: reopen it (status investigating) before adding evidence.' },
  SIQ_EVIDENCE_INCIDENT_OPEN: { status: 409, message: 'Evidence can only be deleted once its incident is closed. Close the incident first.' },
  SIQ_EVIDENCE_DELETED: { status: 410, message: 'The evidence file was deleted; only its tombstone (hash, size, custody chain) remains.' },
  SIQ_EVIDENCE_HASH_MISMATCH: { status: 400, message: 'The uploaded file does not match the SHA-256 you sent with it, so it was not kept. Check the file and upload it again.' },
  SIQ_BACKUP_NOT_FOUND: { status: 404, message: 'No backup with this id exists in the backups bucket. `sentineliq restore list` shows the ones that do.' },
  SIQ_BACKUP_KEY_INVALID: { status: 400, message: 'The backup was encrypted under a key this installation does not have (unknown key id, or a different key under that id). Set BACKUP_ENCRYPTION_KEY or BACKUP_PREVIOUS_KEYS to the key the backup names.' },
  SIQ_BACKUP_CORRUPT: { status: 422, message: 'The backup does not match its manifest (a checksum, the manifest signature or an encrypted frame failed), so it was not used. Restore an older backup.' },
  SIQ_BACKUP_SCHEMA_NEWER: { status: 409, message: 'The backup comes from a newer schema version than this code knows. Upgrade SentinelIQ first, then restore.' },
  SIQ_BACKUP_TARGET_NOT_EMPTY: { status: 409, message: 'The restore target database already has tables. Restore into an empty database, or pass --drop-existing to drop and recreate its schema.' },
  SIQ_BACKUP_RUNNING: { status: 409, message: 'A backup is already running (in this or another process). Wait for it to finish.' },
  SIQ_BACKUP_TOOL_MISSING: { status: 500, message: 'pg_dump or psql is not installed or is older than the server. Install the PostgreSQL client tools of the server\'s major version (Debian: apt-get install postgresql-client).' },
  SIQ_BACKUP_FAILED: { status: 500, message: 'The backup could not be written or verified. The details and the server log say which step failed.' },
  SIQ_JOB_RUNNING: { status: 409, message: 'The job is running right now (in this or another process). Wait for it to finish; its result appears in GET /api/v1/admin/jobs.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

/** An error with a catalogue code. `details` is safe to show to the caller; `cause` is not shown. */
export class SiqError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, options?: { details?: unknown; cause?: unknown }) {
    super(message ?? errorCatalogue[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SiqError';
    this.code = code;
    this.statusCode = errorCatalogue[code].status;
    this.details = options?.details;
  }
}

export function isSiqError(err: unknown, code?: ErrorCode): err is SiqError {
  return err instanceof SiqError && (code === undefined || err.code === code);
}
