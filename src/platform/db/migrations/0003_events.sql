-- The event store: one table partitioned by day on the event time. Hot ECS fields are columns
-- (filters and aggregations use them directly); the whole normalised event, original fields
-- included, is `doc`, a flat object of dotted keys. Partitions are created on demand by the
-- ingest writer (modules/events/partitions.ts) and dropped by retention after archiving.
CREATE TABLE events (
  workspace_id uuid NOT NULL,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  ts timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  source text NOT NULL,
  event_category text,
  event_action text,
  event_outcome text,
  event_severity integer,
  host_name text,
  source_ip inet,
  destination_ip inet,
  user_name text,
  message text,
  doc jsonb NOT NULL,
  search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(message, ''))) STORED
) PARTITION BY RANGE (ts);

CREATE INDEX events_ws_ts_idx ON events (workspace_id, ts DESC, id);
CREATE INDEX events_search_idx ON events USING gin (search);
CREATE INDEX events_ws_action_idx ON events (workspace_id, event_action, ts DESC);
CREATE INDEX events_ws_host_idx ON events (workspace_id, host_name, ts DESC);

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));

-- Per-workspace settings of the event store.
CREATE TABLE event_retention (
  workspace_id uuid PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  retention_days integer NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
  updated_at timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON events, event_retention TO siq_tenant;
  END IF;
END $$;
