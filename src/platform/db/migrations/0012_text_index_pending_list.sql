-- Day partitions made before this migration get the text index's larger pending list that
-- modules/events/partitions.ts gives new ones (gin_pending_list_limit, in kB; PostgreSQL's
-- default is 4 MB): inserts merge into the index in bigger, cheaper batches. Metadata only.
DO $$
DECLARE idx text;
BEGIN
  FOR idx IN
    SELECT ic.relname FROM pg_inherits inh
      JOIN pg_class p ON p.oid = inh.inhparent AND p.relname = 'events'
      JOIN pg_index i ON i.indrelid = inh.inhrelid
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'gin'
  LOOP
    EXECUTE format('ALTER INDEX %I SET (gin_pending_list_limit = 32768)', idx);
  END LOOP;
END $$;
