-- Identity, workspaces (tenants), API keys, policies, and the append-only audit trails.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL,
  display_name text NOT NULL DEFAULT '',
  password_hash text,
  is_platform_admin boolean NOT NULL DEFAULT false,
  failed_sign_ins integer NOT NULL DEFAULT 0,
  locked_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- One-time tokens that let the addresses in ADMIN_EMAILS set their password on first run.
CREATE TABLE setup_tokens (
  token_hash text PRIMARY KEY,
  email text NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens, one row per issued token. A family is one sign-in; each refresh marks its row
-- used and issues the next. Presenting a used token again revokes the whole family.
CREATE TABLE sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  family_id uuid NOT NULL,
  user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  revoked_reason text,
  ip text,
  user_agent text
);
CREATE INDEX sessions_family_idx ON sessions (family_id);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE workspaces (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  created_by uuid REFERENCES users(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_members (
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'analyst', 'viewer')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

CREATE TABLE invitations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  email text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
  token_hash text NOT NULL UNIQUE,
  invited_by uuid REFERENCES users(id) ON DELETE SET NULL,
  expires_at timestamptz NOT NULL,
  accepted_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invitations_workspace_idx ON invitations (workspace_id);

CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name text NOT NULL,
  prefix text NOT NULL UNIQUE,
  key_hash text NOT NULL,
  scopes text[] NOT NULL,
  created_by uuid REFERENCES users(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id);

-- Workspace-specific policies; the role defaults live in code (data in engine.ts).
CREATE TABLE policies (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name text NOT NULL,
  effect text NOT NULL CHECK (effect IN ('allow', 'deny')),
  actions text[] NOT NULL,
  resources text[] NOT NULL,
  conditions jsonb NOT NULL DEFAULT '{}',
  priority integer NOT NULL,
  created_by uuid REFERENCES users(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX policies_workspace_idx ON policies (workspace_id);

-- Append-only: the database itself refuses UPDATE and DELETE on these tables.
CREATE FUNCTION siq_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TABLE policy_audit_logs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workspace_id uuid,
  user_id uuid,
  api_key_id uuid,
  action text NOT NULL,
  resource text NOT NULL,
  allowed boolean NOT NULL,
  policy_id text,
  reason text NOT NULL,
  ip text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX policy_audit_logs_ws_idx ON policy_audit_logs (workspace_id, created_at);
CREATE TRIGGER policy_audit_logs_append_only BEFORE UPDATE OR DELETE ON policy_audit_logs
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change();

-- The audit log: one hash chain per workspace (the nil uuid holds platform-level entries).
-- hash = sha256(prev_hash || canonical JSON of the entry); see modules/audit/chain.ts.
CREATE TABLE audit_logs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workspace_id uuid NOT NULL,
  seq bigint NOT NULL,
  created_at timestamptz NOT NULL,
  user_id uuid,
  user_email text,
  api_key_id uuid,
  action text NOT NULL,
  resource text NOT NULL,
  resource_id text,
  description text NOT NULL DEFAULT '',
  ip text,
  user_agent text,
  request_id text,
  metadata jsonb NOT NULL DEFAULT '{}',
  prev_hash text NOT NULL,
  hash text NOT NULL,
  UNIQUE (workspace_id, seq)
);
CREATE INDEX audit_logs_ws_time_idx ON audit_logs (workspace_id, created_at);
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change();

-- Security-relevant events (failed sign-ins, lockouts, role and policy changes, denials,
-- API-key use), kept for the detection engine to consume.
CREATE TABLE security_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workspace_id uuid,
  type text NOT NULL,
  severity text NOT NULL DEFAULT 'info',
  user_id uuid,
  api_key_id uuid,
  ip text,
  data jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX security_events_time_idx ON security_events (created_at);

-- Row-level security: the second wall behind the explicit workspace filters. Work done for a
-- workspace runs with `siq.workspace_id` set (see platform/db/tenant.ts); rows of other
-- workspaces are invisible even to a query that forgets its filter. Unset means platform-level
-- code (sign-in, membership lookups), which sees everything, as before.
-- PARALLEL SAFE: workers receive the leader's settings, and an unsafe function in a policy
-- would keep every query on the protected tables from running in parallel.
CREATE FUNCTION siq_tenant_visible(ws uuid) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT coalesce(nullif(current_setting('siq.workspace_id', true), ''), ws::text) = ws::text
$$;
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['workspace_members', 'invitations', 'api_keys', 'policies', 'audit_logs', 'policy_audit_logs', 'security_events'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (workspace_id IS NULL OR siq_tenant_visible(workspace_id)) WITH CHECK (workspace_id IS NULL OR siq_tenant_visible(workspace_id))', t);
  END LOOP;
  ALTER TABLE workspaces ENABLE ROW LEVEL SECURITY;
  ALTER TABLE workspaces FORCE ROW LEVEL SECURITY;
  CREATE POLICY tenant_isolation ON workspaces USING (siq_tenant_visible(id)) WITH CHECK (siq_tenant_visible(id));
END $$;

-- Superusers bypass row-level security, so tenant work switches to this role for its
-- transaction (SET LOCAL ROLE). Roles are shared by the whole server, hence "if absent"; where
-- the migrating user may not create roles, the app runs as a non-superuser owner instead, and
-- FORCE ROW LEVEL SECURITY applies to it directly.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    BEGIN
      CREATE ROLE siq_tenant NOLOGIN;
    EXCEPTION WHEN duplicate_object OR insufficient_privilege THEN
      NULL;
    END;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    BEGIN
      EXECUTE format('GRANT siq_tenant TO %I', current_user);
    EXCEPTION WHEN OTHERS THEN
      NULL; -- already a member, or a superuser, who needs no grant
    END;
    GRANT USAGE ON SCHEMA public TO siq_tenant;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO siq_tenant;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO siq_tenant;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO siq_tenant;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO siq_tenant;
  END IF;
END $$;
