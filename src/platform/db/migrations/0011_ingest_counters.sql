-- What ingestion did with the events it received, per workspace and source, across processes
-- and restarts. `stored` is added in the transaction that writes the events (so it always equals
-- what was committed); `rejected` (with its reason) and `dropped` follow shortly after they
-- happen. Received is their sum: an event counts once its outcome is known, so the counters add
-- up even after a crash. No foreign key: counting must never be a reason to refuse events.
CREATE TABLE ingest_counters (
  workspace_id uuid NOT NULL,
  source text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('stored', 'rejected', 'dropped')),
  reason text NOT NULL DEFAULT '',
  events bigint NOT NULL CHECK (events >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, source, outcome, reason)
);

ALTER TABLE ingest_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ingest_counters USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    GRANT SELECT ON ingest_counters TO siq_tenant;
  END IF;
END $$;
