-- Uploads (logos, attachments, evidence files) and per-workspace storage accounting
-- (modules/uploads/service.ts, docs/uploads.md). The bytes live in the object store's files
-- bucket; these rows say what each object is and whose quota it counts against.

-- One row per workspace that has stored something or has a quota of its own. used_bytes moves
-- only through conditional UPDATEs (used_bytes + size <= quota), so parallel uploads can never
-- push it past the quota: each UPDATE waits for the row lock and re-checks the condition.
CREATE TABLE workspace_storage (
  workspace_id uuid PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  -- NULL: the default quota (WORKSPACE_STORAGE_QUOTA_BYTES).
  quota_bytes bigint CHECK (quota_bytes >= 0),
  used_bytes bigint NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE uploads (
  id uuid PRIMARY KEY,
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  purpose text NOT NULL CHECK (purpose IN ('logo', 'attachment', 'evidence')),
  object_key text NOT NULL UNIQUE,
  filename text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
  content_type text NOT NULL,
  -- Bytes stored (after image optimisation); what the quota counts.
  size bigint NOT NULL CHECK (size >= 0),
  -- SHA-256 of the stored bytes, computed while streaming.
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  public boolean NOT NULL DEFAULT false,
  created_by uuid REFERENCES users(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_ws_created_idx ON uploads (workspace_id, created_at DESC);

ALTER TABLE workspace_storage ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_storage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workspace_storage USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE uploads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON uploads USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON workspace_storage, uploads TO siq_tenant;
  END IF;
END $$;
