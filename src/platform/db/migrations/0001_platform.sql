-- The platform's own records. Extensions used by later migrations (trigram search, digests).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- One row describing this installation: when it first started and how often it has started.
-- It makes "the data survived a restart" visible and gives backups an installation id.
CREATE TABLE platform_instance (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  singleton boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_started_at timestamptz NOT NULL DEFAULT now(),
  start_count integer NOT NULL DEFAULT 0
);
