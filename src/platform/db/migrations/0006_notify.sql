-- Notifications: per-workspace channels and the durable outbox the delivery worker drains.
-- Channel secrets (webhook URLs, signing secrets, bot tokens, SMTP URLs with passwords) are
-- stored only as AES-256-GCM ciphertext with the id of the key that sealed them
-- (modules/notify/secret-box.ts); `settings` holds the non-secret part only.
CREATE TABLE notification_channels (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name text NOT NULL,
  type text NOT NULL CHECK (type IN ('webhook', 'slack', 'discord', 'teams', 'telegram', 'email')),
  enabled boolean NOT NULL DEFAULT true,
  min_severity text NOT NULL DEFAULT 'low' CHECK (min_severity IN ('informational', 'low', 'medium', 'high', 'critical')),
  -- Empty means "any rule" / "any tag".
  rule_ids text[] NOT NULL DEFAULT '{}',
  tags text[] NOT NULL DEFAULT '{}',
  settings jsonb NOT NULL DEFAULT '{}',
  secret_ciphertext text,
  secret_key_id text,
  created_by uuid REFERENCES users(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((secret_ciphertext IS NULL) = (secret_key_id IS NULL))
);
CREATE INDEX notification_channels_workspace_idx ON notification_channels (workspace_id);

-- One row per (alert, channel) to deliver; its id is the delivery id receivers dedupe on.
-- alert_id has no foreign key: alerts live in their own module and migration.
-- status: pending (due at next_attempt_at) → sending (claimed until locked_until by claim_token)
-- → sent | pending again (retry) | failed (attempts exhausted or permanent error).
CREATE TABLE notification_outbox (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  channel_id uuid NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
  alert_id uuid,
  kind text NOT NULL DEFAULT 'alert' CHECK (kind IN ('alert', 'test')),
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 10 CHECK (max_attempts >= 1),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  claim_token uuid,
  locked_until timestamptz,
  last_attempt_at timestamptz,
  last_error text,
  last_status_code integer,
  sent_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- An alert is notified once per channel, however often enqueueing is repeated.
CREATE UNIQUE INDEX notification_outbox_alert_channel_key ON notification_outbox (alert_id, channel_id) WHERE kind = 'alert';
CREATE INDEX notification_outbox_due_idx ON notification_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_outbox_lease_idx ON notification_outbox (locked_until) WHERE status = 'sending';
CREATE INDEX notification_outbox_channel_idx ON notification_outbox (channel_id, created_at DESC);
CREATE INDEX notification_outbox_workspace_idx ON notification_outbox (workspace_id);

ALTER TABLE notification_channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_channels FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notification_channels USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE notification_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notification_outbox USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON notification_channels, notification_outbox TO siq_tenant;
  END IF;
END $$;
