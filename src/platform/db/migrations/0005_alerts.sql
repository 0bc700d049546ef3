-- Alerts: what detection raised, aggregated per rule and group key, worked through a lifecycle
-- (see modules/alerts/service.ts and docs/alerts.md). rule_id is text without a foreign key:
-- it is a detection rule's uuid or `platform:<name>` for built-in rules.
CREATE TABLE alerts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  rule_id text NOT NULL,
  rule_title text NOT NULL,
  rule_kind text NOT NULL CHECK (rule_kind IN ('sigma', 'threshold', 'correlation', 'platform')),
  group_key text NOT NULL DEFAULT '',
  title text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('informational', 'low', 'medium', 'high', 'critical')),
  severity_rank smallint GENERATED ALWAYS AS (
    CASE severity WHEN 'informational' THEN 0 WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 4 END
  ) STORED,
  status text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'acknowledged', 'in_progress', 'resolved', 'false_positive')),
  -- True while repeats of the rule and group key land in this alert. At most one such alert per
  -- rule and group key (the unique index below); it turns false when the alert is closed or its
  -- aggregation window has passed, and never turns true again.
  aggregating boolean NOT NULL DEFAULT true,
  assignee_id uuid REFERENCES users(id) ON DELETE SET NULL,
  count bigint NOT NULL DEFAULT 1 CHECK (count >= 1),
  first_seen timestamptz NOT NULL,
  last_seen timestamptz NOT NULL,
  -- [{id, ts}] of matching events, the first 200 distinct ones (count keeps counting).
  event_refs jsonb NOT NULL DEFAULT '[]',
  tags text[] NOT NULL DEFAULT '{}',
  details jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz,
  CHECK (NOT aggregating OR status IN ('new', 'acknowledged', 'in_progress'))
);
-- Two processes raising the same rule and group key at once meet here: one inserts, the other
-- conflicts and aggregates into it.
CREATE UNIQUE INDEX alerts_aggregating_key ON alerts (workspace_id, rule_id, group_key) WHERE aggregating;
CREATE INDEX alerts_ws_last_seen_idx ON alerts (workspace_id, last_seen DESC, id DESC);
CREATE INDEX alerts_ws_status_idx ON alerts (workspace_id, status, last_seen DESC);
CREATE INDEX alerts_ws_assignee_idx ON alerts (workspace_id, assignee_id) WHERE assignee_id IS NOT NULL;
CREATE INDEX alerts_ws_rule_idx ON alerts (workspace_id, rule_id, last_seen DESC);

CREATE TABLE alert_comments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  alert_id uuid NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  author_user_id uuid REFERENCES users(id) ON DELETE SET NULL,
  author_api_key_id uuid,
  text text NOT NULL CHECK (length(text) BETWEEN 1 AND 10000),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_comments_alert_idx ON alert_comments (alert_id, created_at);

-- Every change of an alert (created, status, assignment, comment, severity), append-only like
-- the audit tables. No foreign keys: a cascade delete would be refused by the trigger, and the
-- history outlives its alert the way audit entries outlive their workspace.
CREATE TABLE alert_history (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workspace_id uuid NOT NULL,
  alert_id uuid NOT NULL,
  action text NOT NULL CHECK (action IN ('created', 'status', 'assignment', 'comment', 'severity')),
  actor_user_id uuid,
  actor_api_key_id uuid,
  from_value text,
  to_value text,
  details jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_history_alert_idx ON alert_history (workspace_id, alert_id, id);
CREATE TRIGGER alert_history_append_only BEFORE UPDATE OR DELETE ON alert_history
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change();

ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alerts USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE alert_comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_comments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_comments USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE alert_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_history USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON alerts, alert_comments TO siq_tenant;
    GRANT SELECT, INSERT ON alert_history TO siq_tenant;
    GRANT USAGE, SELECT ON SEQUENCE alert_history_id_seq TO siq_tenant;
  END IF;
END $$;
