-- Detection rules per workspace: Sigma documents (rules, correlations, meta filters) and
-- threshold rules, each with its source kept and every version recorded. The built-in threshold
-- rules are rows too (`builtin` names them), so they can be disabled or re-levelled like any other.
CREATE TABLE detection_rules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('sigma', 'threshold')),
  -- For Sigma: rule, correlation or filter. For thresholds: threshold.
  doc_kind text NOT NULL CHECK (doc_kind IN ('rule', 'correlation', 'filter', 'threshold')),
  sigma_id text,
  name text,
  builtin text,
  title text NOT NULL,
  description text NOT NULL DEFAULT '',
  level text NOT NULL CHECK (level IN ('informational', 'low', 'medium', 'high', 'critical')),
  severity_override text CHECK (severity_override IN ('informational', 'low', 'medium', 'high', 'critical')),
  status text,
  tags text[] NOT NULL DEFAULT '{}',
  logsource jsonb NOT NULL DEFAULT '{}',
  enabled boolean NOT NULL DEFAULT true,
  version integer NOT NULL DEFAULT 1,
  -- The YAML document (Sigma) or the JSON definition (threshold) the rule is compiled from.
  source text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Importing a rule with the same Sigma id again makes a new version of that rule.
CREATE UNIQUE INDEX detection_rules_sigma_id ON detection_rules (workspace_id, sigma_id) WHERE sigma_id IS NOT NULL;
CREATE UNIQUE INDEX detection_rules_builtin ON detection_rules (workspace_id, builtin) WHERE builtin IS NOT NULL;
CREATE INDEX detection_rules_ws_idx ON detection_rules (workspace_id, enabled, title);

-- Every version of every rule, append-only.
CREATE TABLE detection_rule_versions (
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  rule_id uuid NOT NULL REFERENCES detection_rules(id) ON DELETE CASCADE,
  version integer NOT NULL,
  source text NOT NULL,
  changed_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rule_id, version)
);
CREATE TRIGGER detection_rule_versions_append_only BEFORE UPDATE ON detection_rule_versions FOR EACH ROW EXECUTE FUNCTION siq_refuse_change();

-- Values of `%name%` placeholders for Sigma's `expand` modifier, per workspace.
CREATE TABLE detection_placeholders (
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
  "values" text[] NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, name)
);

-- Retro-hunts: a rule run over stored events for a time range, with progress.
CREATE TABLE detection_hunts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  rule_id uuid NOT NULL REFERENCES detection_rules(id) ON DELETE CASCADE,
  range_from timestamptz NOT NULL,
  range_to timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
  events_scanned bigint NOT NULL DEFAULT 0,
  matches bigint NOT NULL DEFAULT 0,
  progress real NOT NULL DEFAULT 0,
  error text,
  raise_alerts boolean NOT NULL DEFAULT false,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

ALTER TABLE detection_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE detection_rules FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON detection_rules USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE detection_rule_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE detection_rule_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON detection_rule_versions USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE detection_placeholders ENABLE ROW LEVEL SECURITY;
ALTER TABLE detection_placeholders FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON detection_placeholders USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));
ALTER TABLE detection_hunts ENABLE ROW LEVEL SECURITY;
ALTER TABLE detection_hunts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON detection_hunts USING (siq_tenant_visible(workspace_id)) WITH CHECK (siq_tenant_visible(workspace_id));

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON detection_rules, detection_placeholders, detection_hunts TO siq_tenant;
    GRANT SELECT, INSERT, DELETE ON detection_rule_versions TO siq_tenant;
  END IF;
END $$;
