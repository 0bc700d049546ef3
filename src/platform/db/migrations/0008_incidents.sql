-- Incidents: alerts turned into a case and worked on a timeline (see modules/incidents/service.ts
-- and docs/incidents.md). The timeline is append-only like the audit tables.
CREATE TABLE incidents (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  title text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
  description text NOT NULL DEFAULT '' CHECK (length(description) <= 20000),
  severity text NOT NULL CHECK (severity IN ('informational', 'low', 'medium', 'high', 'critical')),
  severity_rank smallint GENERATED ALWAYS AS (
    CASE severity WHEN 'informational' THEN 0 WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 4 END
  ) STORED,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'investigating', 'contained', 'resolved', 'closed')),
  assignee_id uuid REFERENCES users(id) ON DELETE SET NULL,
  tags text[] NOT NULL DEFAULT '{}',
  -- MITRE ATT&CK technique ids (T1059, T1059.001), checked by the service.
  techniques text[] NOT NULL DEFAULT '{}',
  created_by uuid REFERENCES users(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  closed_at timestamptz
);
CREATE INDEX incidents_ws_created_idx ON incidents (workspace_id, created_at DESC, id DESC);
CREATE INDEX incidents_ws_status_idx ON incidents (workspace_id, status, created_at DESC);

-- Alerts linked to an incident (an alert may belong to several incidents).
CREATE TABLE incident_alerts (
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  incident_id uuid NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
  alert_id uuid NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  linked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (incident_id, alert_id)
);
CREATE INDEX incident_alerts_alert_idx ON incident_alerts (workspace_id, alert_id);

-- Observables (ip, domain, url, hash, user, host): one row per incident, type and value.
-- `norm` is the lower-cased value, used for uniqueness and for the search across incidents.
-- `alert_ids` are the linked alerts whose events carried it; `manual` is set when a person added
-- it. Unlinking an alert removes it from alert_ids, and a row with neither goes.
CREATE TABLE incident_observables (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  incident_id uuid NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
  type text NOT NULL CHECK (type IN ('ip', 'domain', 'url', 'hash', 'user', 'host')),
  value text NOT NULL CHECK (length(value) BETWEEN 1 AND 2048),
  norm text NOT NULL,
  fields text[] NOT NULL DEFAULT '{}',
  alert_ids uuid[] NOT NULL DEFAULT '{}',
  manual boolean NOT NULL DEFAULT false,
  note text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (incident_id, type, norm)
);
CREATE INDEX incident_observables_search_idx ON incident_observables (workspace_id, type, norm);

CREATE TABLE incident_tasks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  incident_id uuid NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
  title text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
  description text NOT NULL DEFAULT '',
  owner_id uuid REFERENCES users(id) ON DELETE SET NULL,
  status text NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done', 'cancelled')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);
CREATE INDEX incident_tasks_incident_idx ON incident_tasks (incident_id, created_at);

CREATE TABLE incident_comments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  incident_id uuid NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
  author_user_id uuid REFERENCES users(id) ON DELETE SET NULL,
  author_api_key_id uuid,
  text text NOT NULL CHECK (length(text) BETWEEN 1 AND 10000),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_comments_incident_idx ON incident_comments (incident_id, created_at);

-- Every change of an incident. No foreign keys: a cascade delete would be refused by the
-- trigger, and the timeline outlives its incident the way audit entries do.
CREATE TABLE incident_timeline (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workspace_id uuid NOT NULL,
  incident_id uuid NOT NULL,
  action text NOT NULL,
  actor_user_id uuid,
  actor_api_key_id uuid,
  summary text NOT NULL DEFAULT '',
  details jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_timeline_incident_idx ON incident_timeline (workspace_id, incident_id, id);
CREATE TRIGGER incident_timeline_append_only BEFORE UPDATE OR DELETE ON incident_timeline
  FOR EACH ROW EXECUTE FUNCTION siq_refuse_change();

ALTER TABLE incidents ENABLE ROW LEVEL SECURITY;
ALTER TABLE incidents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incidents USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE incident_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_alerts USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE incident_observables ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_observables FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_observables USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE incident_tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_tasks USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE incident_comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_comments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_comments USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE incident_timeline ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_timeline FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_timeline USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON incidents, incident_alerts, incident_observables, incident_tasks, incident_comments TO siq_tenant;
    GRANT SELECT, INSERT ON incident_timeline TO siq_tenant;
    GRANT USAGE, SELECT ON SEQUENCE incident_timeline_id_seq TO siq_tenant;
  END IF;
END $$;
