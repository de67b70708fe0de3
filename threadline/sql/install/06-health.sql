---------------------------------------------------------------------------------------
-- Health: what keeps capture from being whole, read from the catalog alone.
---------------------------------------------------------------------------------------

-- One row per finding, from one catalog snapshot (no audited data is read, so it needs no
-- grant on the audited tables and works through any pooler): its severity ('error' when
-- changes go or may go unrecorded, 'warning' otherwise), the audited table (null for the
-- install itself), a stable code, what is wrong, and the SQL that fixes it.
--   trigger_missing, trigger_disabled, trigger_replica_only, trigger_duplicated,
--   capture_stale (a column added, dropped or renamed while the event triggers were absent),
--   key_not_unique (the policy's key lost its unique index), table_missing,
--   capture_owner (capture does not run as threadline_capture),
--   event_triggers_missing, event_trigger_disabled
-- (JIT is off: compiling this many-branched query would take a second, running it takes
-- about 50 ms over a thousand audited tables.)
CREATE FUNCTION threadline.health_findings()
RETURNS TABLE (severity text, table_schema text, table_name text, code text, detail text, fix text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET jit = off AS $$
    WITH snapshots AS (
        -- every audited table's columns in one pass (column_snapshot, for all of them at once)
        SELECT a.attrelid, jsonb_object_agg(a.attnum::text, a.attname) AS columns
          FROM pg_attribute a
         WHERE a.attrelid IN (SELECT t.relid FROM threadline.audited_tables t) AND a.attnum > 0 AND NOT a.attisdropped
         GROUP BY a.attrelid),
    audited AS (
        SELECT t.*, c.oid IS NOT NULL AS present, format('%I.%I', t.table_schema, t.table_name) AS qualified,
               (SELECT p.oid FROM pg_proc p
                 WHERE p.pronamespace = 'threadline'::regnamespace AND p.proname = t.function_name) AS function_oid,
               coalesce(s.columns, '{}') AS columns_now
          FROM threadline.audited_tables t
          LEFT JOIN pg_class c ON c.oid = t.relid
          LEFT JOIN snapshots s ON s.attrelid = t.relid),
    nodes AS (
        SELECT a.*, n.relid AS node, c.relkind, n.relid::regclass::text AS node_name
          FROM audited a
          CROSS JOIN LATERAL (SELECT a.relid UNION SELECT x.relid FROM pg_partition_tree(a.relid) x) n(relid)
          JOIN pg_class c ON c.oid = n.relid
         WHERE a.present),
    expected AS (
        SELECT nd.*, e.name
          FROM nodes nd
          CROSS JOIN LATERAL unnest(ARRAY['threadline_insert', 'threadline_update', 'threadline_delete']
                                    || CASE WHEN nd.relkind = 'r' THEN ARRAY['threadline_truncate'] ELSE '{}' END) e(name)),
    triggers AS (
        SELECT nd.*, tg.tgname::text AS tgname, tg.tgenabled
          FROM nodes nd JOIN pg_trigger tg ON tg.tgrelid = nd.node AND tg.tgfoid = nd.function_oid)
    SELECT 'error', e.table_schema, e.table_name, 'trigger_missing',
           format('%s has no capture trigger %s: its %s statements are not recorded', e.node_name, e.name,
                  upper(replace(e.name, 'threadline_', ''))),
           format('SELECT threadline.refresh_table(%L);', e.qualified)
      FROM expected e
     WHERE NOT EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = e.node AND tg.tgname = e.name
                                                     AND tg.tgfoid = e.function_oid)
    UNION ALL
    SELECT 'error', t.table_schema, t.table_name,
           CASE t.tgenabled WHEN 'D' THEN 'trigger_disabled' ELSE 'trigger_replica_only' END,
           format('capture trigger %s on %s is %s', t.tgname, t.node_name,
                  CASE t.tgenabled WHEN 'D' THEN 'disabled' ELSE 'enabled for replication sessions only' END),
           format('ALTER TABLE %s ENABLE TRIGGER %I;', t.node_name, t.tgname)
      FROM triggers t
     WHERE t.tgenabled IN ('D', 'R')
       AND t.tgname IN ('threadline_insert', 'threadline_update', 'threadline_delete', 'threadline_truncate')
    UNION ALL
    SELECT 'error', t.table_schema, t.table_name, 'trigger_duplicated',
           format('%s calls its capture function from a second trigger %s: its changes are recorded twice',
                  t.node_name, t.tgname),
           format('DROP TRIGGER %I ON %s;', t.tgname, t.node_name)
      FROM triggers t
     WHERE t.tgname NOT IN ('threadline_insert', 'threadline_update', 'threadline_delete', 'threadline_truncate')
    UNION ALL
    SELECT 'error', a.table_schema, a.table_name, 'capture_stale',
           format('the capture of %s predates a change of its columns: new columns are not recorded', a.qualified),
           format('SELECT threadline.refresh_table(%L);', a.qualified)
      FROM audited a
     WHERE a.present AND a.columns <> a.columns_now
    UNION ALL
    SELECT 'error', a.table_schema, a.table_name, 'key_not_unique',
           format('no valid unique index of %s covers the policy''s key (%s): rows cannot be told apart',
                  a.qualified, array_to_string(a.key_columns, ', ')),
           format('CREATE UNIQUE INDEX ON %s (%s);', a.qualified,
                  (SELECT string_agg(format('%I', k), ', ') FROM unnest(a.key_columns) k))
      FROM audited a
     WHERE a.present AND jsonb_typeof(a.policy -> 'primary_key') = 'array'
       AND NOT threadline.key_index_exists(a.relid, a.key_columns)
    UNION ALL
    SELECT 'warning', a.table_schema, a.table_name, 'table_missing',
           format('the audited table %s is not where its policy says (restored into new oids?)', a.qualified),
           format('SELECT threadline.refresh_table(%L);', a.qualified)
      FROM audited a
     WHERE NOT a.present
    UNION ALL
    SELECT 'warning', a.table_schema, a.table_name, 'capture_owner',
           format('the capture of %s runs as %s, not as threadline_capture', a.qualified,
                  (SELECT p.proowner::regrole::text FROM pg_proc p WHERE p.oid = a.function_oid)),
           format('SELECT threadline.refresh_table(%L);  -- as a superuser', a.qualified)
      FROM audited a
     WHERE a.present AND EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'threadline_capture')
       AND (SELECT p.proowner FROM pg_proc p WHERE p.oid = a.function_oid)
           IS DISTINCT FROM (SELECT r.oid FROM pg_roles r WHERE r.rolname = 'threadline_capture')
    UNION ALL
    SELECT 'warning', NULL, NULL, 'event_triggers_missing',
           format('the event trigger %s is missing: schema changes of audited tables are not followed, and their owners can drop or disable capture unseen', e.name),
           'Install Threadline as a superuser (the install creates the event triggers), or run SELECT threadline.refresh_table(''schema.table'') after each ALTER TABLE.'
      FROM unnest(ARRAY['threadline_ddl_command_end', 'threadline_sql_drop']) e(name)
     WHERE NOT EXISTS (SELECT 1 FROM pg_event_trigger et WHERE et.evtname = e.name)
    UNION ALL
    SELECT 'error', NULL, NULL, 'event_trigger_disabled',
           format('the event trigger %s is disabled: schema changes of audited tables are not followed', et.evtname),
           format('ALTER EVENT TRIGGER %I ENABLE;', et.evtname)
      FROM pg_event_trigger et
     WHERE et.evtname IN ('threadline_ddl_command_end', 'threadline_sql_drop') AND et.evtenabled = 'D'
    ORDER BY 1, 2, 3, 4, 5;
$$;

