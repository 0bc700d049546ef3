-- Data lifecycle (see modules/lifecycle/service.ts and docs/operations.md, "Data lifecycle"):
-- append-only history older than its retention is archived to object storage, verified, and only
-- then deleted. The append-only triggers keep refusing every UPDATE, and every DELETE except one
-- made inside the lifecycle job's own purge transaction.

-- Like siq_refuse_change, but a DELETE passes when the transaction set `siq.lifecycle_purge` to
-- `on` (SET LOCAL, so it ends with the transaction) and does not run as the tenant role, so no
-- request-handling code path can reach it. UPDATE is always refused.
CREATE FUNCTION siq_refuse_change_except_purge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('siq.lifecycle_purge', true) = 'on' AND current_user <> 'siq_tenant' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

-- The tables that may age out. evidence_custody and detection_rule_versions keep the strict
-- siq_refuse_change: a custody chain lives as long as its evidence (whose row stays as a
-- tombstone), and rule versions are the configuration history of live rules.
DROP TRIGGER audit_logs_append_only ON audit_logs;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change_except_purge();
DROP TRIGGER policy_audit_logs_append_only ON policy_audit_logs;
CREATE TRIGGER policy_audit_logs_append_only BEFORE UPDATE OR DELETE ON policy_audit_logs
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change_except_purge();
DROP TRIGGER alert_history_append_only ON alert_history;
CREATE TRIGGER alert_history_append_only BEFORE UPDATE OR DELETE ON alert_history
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change_except_purge();
DROP TRIGGER incident_timeline_append_only ON incident_timeline;
CREATE TRIGGER incident_timeline_append_only BEFORE UPDATE OR DELETE ON incident_timeline
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change_except_purge();
-- security_events had no trigger; it is append-only history like the others.
CREATE TRIGGER security_events_append_only BEFORE UPDATE OR DELETE ON security_events
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change_except_purge();
CREATE INDEX IF NOT EXISTS policy_audit_logs_time_idx ON policy_audit_logs (created_at);
CREATE INDEX IF NOT EXISTS alert_history_time_idx ON alert_history (created_at);
CREATE INDEX IF NOT EXISTS incident_timeline_time_idx ON incident_timeline (created_at);

-- One row per archived segment of a workspace's audit hash chain: entries first_seq..last_seq
-- went to object_key (SHA-256 sha256). The newest row is the anchor verifyChain starts from
-- (last_hash instead of the genesis hash); consecutive rows link (first_prev_hash = the previous
-- row's last_hash), so the archived part stays a verifiable summary of the chain.
CREATE TABLE audit_chain_anchors (
  workspace_id uuid NOT NULL,
  first_seq bigint NOT NULL CHECK (first_seq >= 1),
  archived_through_seq bigint NOT NULL,
  archived_through_id bigint NOT NULL,
  first_prev_hash text NOT NULL,
  last_hash text NOT NULL,
  entries bigint NOT NULL CHECK (entries >= 1),
  archived_at timestamptz NOT NULL DEFAULT now(),
  object_key text NOT NULL,
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  PRIMARY KEY (workspace_id, archived_through_seq),
  CHECK (archived_through_seq >= first_seq)
);
CREATE TRIGGER audit_chain_anchors_append_only BEFORE UPDATE OR DELETE ON audit_chain_anchors
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change();
ALTER TABLE audit_chain_anchors ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_anchors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_chain_anchors USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));

-- Every run of a scheduled job that records durably (start, duration, result or error), so the
-- admin API shows the history across restarts. Platform-level: no workspace.
CREATE TABLE job_runs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job text NOT NULL,
  started_at timestamptz NOT NULL,
  duration_ms integer NOT NULL,
  ok boolean NOT NULL,
  result jsonb,
  error text
);
CREATE INDEX job_runs_job_idx ON job_runs (job, started_at DESC);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    GRANT SELECT ON audit_chain_anchors TO siq_tenant;
    REVOKE ALL ON job_runs FROM siq_tenant;
  END IF;
END $$;
