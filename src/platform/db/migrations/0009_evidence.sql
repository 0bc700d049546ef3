-- Evidence of incidents (the Aegis evidence store) and its chain of custody; see
-- modules/evidence/service.ts and docs/incidents.md. The bytes live in the files bucket through
-- the upload service (purpose 'evidence'); this row keeps what proves them: SHA-256, size, who
-- and when. Deleting evidence (after its incident is closed) removes the bytes and leaves this
-- row as a tombstone (deleted_at set).
CREATE TABLE evidence (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  incident_id uuid NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
  upload_id uuid NOT NULL,
  filename text NOT NULL,
  -- Detected from the content by the upload service; declared_content_type is what the client said.
  content_type text NOT NULL,
  declared_content_type text,
  size bigint NOT NULL CHECK (size >= 0),
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  description text NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
  uploaded_by uuid,
  uploaded_by_api_key uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_verified_at timestamptz,
  last_verification text CHECK (last_verification IN ('passed', 'failed')),
  deleted_at timestamptz,
  deleted_by uuid,
  deletion_reason text
);
CREATE INDEX evidence_incident_idx ON evidence (workspace_id, incident_id, created_at);

-- What identifies the evidence never changes once written.
CREATE FUNCTION siq_evidence_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id IS DISTINCT FROM OLD.id OR NEW.workspace_id IS DISTINCT FROM OLD.workspace_id OR NEW.incident_id IS DISTINCT FROM OLD.incident_id
     OR NEW.upload_id IS DISTINCT FROM OLD.upload_id OR NEW.filename IS DISTINCT FROM OLD.filename OR NEW.size IS DISTINCT FROM OLD.size
     OR NEW.sha256 IS DISTINCT FROM OLD.sha256 OR NEW.created_at IS DISTINCT FROM OLD.created_at OR NEW.uploaded_by IS DISTINCT FROM OLD.uploaded_by
     OR NEW.uploaded_by_api_key IS DISTINCT FROM OLD.uploaded_by_api_key OR (OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS DISTINCT FROM OLD.deleted_at) THEN
    RAISE EXCEPTION 'evidence %: identifying fields are immutable', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER evidence_immutable BEFORE UPDATE ON evidence FOR EACH ROW EXECUTE FUNCTION siq_evidence_immutable();

-- The chain of custody: one hash-linked list per evidence item, append-only.
-- hash = sha256(prev_hash || "\n" || canonical JSON of the entry); see modules/evidence/custody.ts.
-- No foreign keys, like the audit log: the chain outlives the evidence row.
CREATE TABLE evidence_custody (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workspace_id uuid NOT NULL,
  evidence_id uuid NOT NULL,
  seq integer NOT NULL CHECK (seq >= 1),
  action text NOT NULL CHECK (action IN ('upload', 'view', 'download', 'export', 'verify', 'delete')),
  created_at timestamptz NOT NULL,
  actor_user_id uuid,
  actor_email text,
  actor_api_key_id uuid,
  ip text,
  request_id text,
  details jsonb NOT NULL DEFAULT '{}',
  prev_hash text NOT NULL,
  hash text NOT NULL,
  UNIQUE (evidence_id, seq)
);
CREATE INDEX evidence_custody_ws_idx ON evidence_custody (workspace_id, evidence_id, seq);
CREATE TRIGGER evidence_custody_append_only BEFORE UPDATE OR DELETE ON evidence_custody
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change();

ALTER TABLE evidence ENABLE ROW LEVEL SECURITY;
ALTER TABLE evidence FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON evidence USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE evidence_custody ENABLE ROW LEVEL SECURITY;
ALTER TABLE evidence_custody FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON evidence_custody USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    GRANT SELECT, INSERT, UPDATE ON evidence TO siq_tenant;
    GRANT SELECT, INSERT ON evidence_custody TO siq_tenant;
    GRANT USAGE, SELECT ON SEQUENCE evidence_custody_id_seq TO siq_tenant;
  END IF;
END $$;
