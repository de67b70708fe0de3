---------------------------------------------------------------------------------------
-- Schema changes: keep each audited table's capture in step with its shape.
---------------------------------------------------------------------------------------

-- The capture function an audited table or one of its partitions calls, or null.
CREATE FUNCTION threadline.audited_function_of(rel oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.function_name
      FROM pg_trigger tg
      JOIN pg_proc p ON p.oid = tg.tgfoid AND p.pronamespace = 'threadline'::regnamespace
      JOIN threadline.audited_tables t ON t.function_name = p.proname
     WHERE tg.tgrelid = rel AND tg.tgname = 'threadline_insert';
$$;

-- Brings an audited table's stored policy up to date with its current shape (renamed
-- table, renamed or dropped columns) and regenerates its capture. A masked or
-- excluded column that is renamed stays masked or excluded under its new name; one
-- that is dropped stays in the policy, so a column added later under its name is
-- redacted too.
CREATE FUNCTION threadline.refresh_capture(function_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r threadline.audited_tables;
    v_rel regclass;
    v_now jsonb;
    v_names text[];
    v_policy jsonb;
    v_key text;
    v_renamed jsonb := '{}';
    v_old text;
    v_attnum text;
    v_lost text;
BEGIN
    SELECT * INTO r FROM threadline.audited_tables t WHERE t.function_name = refresh_capture.function_name;
    -- the root table: the stored one, or after a restore (new oids) the one table
    -- outside a partition tree whose triggers call this function
    SELECT tg.tgrelid INTO v_rel
      FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
     WHERE tg.tgfoid = format('threadline.%I()', r.function_name)::regprocedure
       AND tg.tgname = 'threadline_insert' AND NOT c.relispartition
     ORDER BY tg.tgrelid = r.relid DESC, c.relkind = 'p' DESC
     LIMIT 1;
    v_now := threadline.column_snapshot(v_rel);
    v_names := ARRAY(SELECT value FROM jsonb_each_text(v_now));
    v_policy := r.policy;
    IF v_rel = r.relid THEN
        -- a name in the snapshot that is gone while its column number carries another
        -- name now was renamed
        FOR v_attnum, v_old IN SELECT key, value FROM jsonb_each_text(r.columns) LOOP
            IF NOT v_old = ANY (v_names) AND v_now ? v_attnum THEN
                v_renamed := v_renamed || jsonb_build_object(v_old, v_now ->> v_attnum);
            END IF;
        END LOOP;
    ELSE
        -- restored into new oids: column numbers may differ, so renames cannot be told
        -- from drops; refuse rather than guess about a redacted column
        SELECT string_agg(format('%I', c), ', ') INTO v_lost
          FROM unnest(threadline.policy_columns(v_policy, 'exclude') || threadline.policy_columns(v_policy, 'mask')) c
         WHERE NOT c = ANY (v_names)
           AND EXISTS (SELECT 1 FROM jsonb_each_text(r.columns) s WHERE s.value = c);
        IF v_lost IS NOT NULL THEN
            RAISE EXCEPTION 'threadline: cannot tell what became of redacted column % of %', v_lost, v_rel
                USING ERRCODE = '55000',
                      HINT = format('Run SELECT threadline.audit_table(%L, <policy>) with the current column names first.', v_rel::text);
        END IF;
    END IF;
    FOREACH v_key IN ARRAY ARRAY['exclude', 'mask', 'ignore_changes'] LOOP
        v_policy := jsonb_set(v_policy, ARRAY[v_key], to_jsonb(ARRAY(
            SELECT DISTINCT coalesce(v_renamed ->> c, c)
              FROM unnest(threadline.policy_columns(v_policy, v_key)) c
             ORDER BY 1)));
    END LOOP;
    IF jsonb_typeof(v_policy -> 'primary_key') = 'array' THEN
        v_policy := jsonb_set(v_policy, '{primary_key}', to_jsonb(ARRAY(
            SELECT coalesce(v_renamed ->> c, c)
              FROM jsonb_array_elements_text(v_policy -> 'primary_key') WITH ORDINALITY AS x(c, n) ORDER BY n)));
    END IF;
    UPDATE threadline.audited_tables t
       SET table_schema = n.nspname, table_name = c.relname, relid = v_rel, policy = v_policy,
           key_columns = threadline.key_columns(v_rel, v_policy), columns = v_now, updated_at = now()
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = v_rel AND t.function_name = r.function_name;
    PERFORM threadline.generate_capture(v_rel);
END
$$;

-- Refreshes an audited table by name, for installs without the event triggers: run it
-- after each ALTER TABLE of an audited table.
CREATE FUNCTION threadline.refresh_table(target regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_function text := threadline.audited_function_of(threadline.resolve_table(target));
BEGIN
    IF v_function IS NULL THEN
        RAISE EXCEPTION 'threadline: % is not audited', target USING ERRCODE = '22023';
    END IF;
    PERFORM threadline.refresh_capture(v_function);
END
$$;

-- Whether a relation is an audited table or a partition below one.
CREATE FUNCTION threadline.in_audited_tree(rel oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM threadline.audited_tables t
                    WHERE t.relid = rel OR t.relid IN (SELECT a.relid FROM pg_partition_ancestors(rel) a));
$$;

-- The audited tables (roots) a DDL command touched: a table or its row type altered
-- under any command name (ALTER INDEX, ALTER VIEW and ALTER TYPE can rename a table or
-- its columns too), a schema renamed, a partition or inheritance child of one created or
-- attached.
CREATE FUNCTION threadline.touched_audited_tables() RETURNS SETOF oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH cmd AS (SELECT c.classid, c.objid FROM pg_event_trigger_ddl_commands() c),
    touched AS (
        SELECT cmd.objid AS relid FROM cmd WHERE cmd.classid = 'pg_class'::regclass
        UNION
        SELECT t.typrelid FROM cmd JOIN pg_type t ON t.oid = cmd.objid
         WHERE cmd.classid = 'pg_type'::regclass AND t.typrelid <> 0
        UNION
        SELECT c.oid FROM cmd JOIN pg_class c ON c.relnamespace = cmd.objid
         WHERE cmd.classid = 'pg_namespace'::regclass)
    SELECT DISTINCT a.relid
      FROM touched
      CROSS JOIN LATERAL (SELECT touched.relid UNION ALL SELECT x.relid FROM pg_partition_ancestors(touched.relid) x) up(relid)
      JOIN threadline.audited_tables a ON a.relid = up.relid;
$$;

-- ddl_command_end, after every command that can change a table's shape or its triggers:
-- - a capture trigger cannot be altered (renamed, the next refresh would add a second
--   trigger and every change would be captured twice; made to depend on an extension,
--   dropping the extension would drop it);
-- - an inheritance or partition layout that capture cannot follow is refused;
-- - every audited table the command touched is refreshed, and the command is recorded
--   in schema_events.
CREATE FUNCTION threadline.on_ddl_command_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_function text;
    v_trigger record;
BEGIN
    SELECT tg.tgname, tg.tgrelid::regclass AS target INTO v_trigger
      FROM pg_event_trigger_ddl_commands() cmd
      JOIN pg_trigger tg ON tg.oid = cmd.objid
      JOIN pg_proc p ON p.oid = tg.tgfoid AND p.pronamespace = 'threadline'::regnamespace
      JOIN threadline.audited_tables t ON t.function_name = p.proname
     WHERE cmd.classid = 'pg_trigger'::regclass AND TG_TAG = 'ALTER TRIGGER'
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'threadline: the capture triggers of audited table % cannot be altered (% %)', v_trigger.target, TG_TAG, v_trigger.tgname
            USING ERRCODE = '55000', HINT = 'Stop capture with threadline.unaudit_table instead.';
    END IF;
    PERFORM threadline.check_layout(t.relid)
       FROM pg_event_trigger_ddl_commands() cmd
       JOIN threadline.audited_tables t
         ON t.relid = cmd.objid
         OR t.relid IN (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = cmd.objid)
         OR t.relid IN (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = cmd.objid)
      WHERE cmd.classid = 'pg_class'::regclass;
    FOR v_function IN
        SELECT t.function_name FROM threadline.touched_audited_tables() x
          JOIN threadline.audited_tables t ON t.relid = x
    LOOP
        PERFORM threadline.refresh_capture(v_function);
        -- recorded under the name the refresh just stored (a rename is recorded as the new name)
        PERFORM threadline.record_schema_event(t.table_schema, t.table_name, TG_TAG,
                    (SELECT array_agg(DISTINCT cmd.object_identity) FROM pg_event_trigger_ddl_commands() cmd))
           FROM threadline.audited_tables t WHERE t.function_name = v_function;
    END LOOP;
END
$$;

-- sql_drop, after every command that can drop a table, an index or a trigger:
-- - dropping a capture trigger that its audited table still needs is refused, whatever
--   the command (DROP TRIGGER, or DROP EXTENSION of an extension it was made to depend on);
-- - DROP INDEX of the unique index behind a policy's primary_key is refused;
-- - a dropped audited table's policy and function go, and its dropping is recorded.
CREATE FUNCTION threadline.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_function text;
    v_schema text;
    v_table text;
    v_dropped record;
    v_rel regclass;
BEGIN
    FOR v_dropped IN SELECT d.address_names FROM pg_event_trigger_dropped_objects() d WHERE d.object_type = 'trigger' LOOP
            v_rel := to_regclass(format('%I.%I', v_dropped.address_names[1], v_dropped.address_names[2]));
            IF v_rel IS NOT NULL AND threadline.in_audited_tree(v_rel)
               AND (v_dropped.address_names[3] IN ('threadline_insert', 'threadline_update', 'threadline_delete')
                    OR (v_dropped.address_names[3] = 'threadline_truncate'
                        AND (SELECT c.relkind FROM pg_class c WHERE c.oid = v_rel) = 'r')) THEN
                RAISE EXCEPTION 'threadline: % is audited; its capture trigger % cannot be dropped (%)', v_rel, v_dropped.address_names[3], TG_TAG
                    USING ERRCODE = '55000', HINT = format('Stop capture with SELECT threadline.unaudit_table(%L) instead.', v_rel::text);
            END IF;
    END LOOP;
    IF TG_TAG = 'DROP INDEX' THEN
        PERFORM threadline.key_columns(t.relid, t.policy)
           FROM threadline.audited_tables t
          WHERE jsonb_typeof(t.policy -> 'primary_key') = 'array'
            AND t.table_schema IN (SELECT d.schema_name FROM pg_event_trigger_dropped_objects() d WHERE d.object_type = 'index');
        RETURN;
    END IF;
    FOR v_function, v_schema, v_table IN
        DELETE FROM threadline.audited_tables t
         USING pg_event_trigger_dropped_objects() d
         WHERE d.object_type = 'table'
           AND (d.objid = t.relid
                -- after a restore the stored oid is stale: then the name says which table
                OR (d.schema_name = t.table_schema AND d.object_name = t.table_name
                    AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.relid)))
        RETURNING t.function_name, t.table_schema, t.table_name
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS threadline.%I() CASCADE', v_function);
        PERFORM threadline.record_schema_event(v_schema, v_table, 'DROP TABLE', ARRAY[TG_TAG]);
    END LOOP;
END
$$;

DO $$
BEGIN
    -- every command that can rename, reshape, move or re-parent a table or its
    -- columns, under whatever object type it names (ALTER INDEX and ALTER VIEW rename a
    -- table too), or alter or drop a trigger; not the commands capture generation runs
    CREATE EVENT TRIGGER threadline_ddl_command_end ON ddl_command_end
        WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE',
                     'ALTER INDEX', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER SEQUENCE', 'ALTER TYPE',
                     'CREATE SCHEMA', 'ALTER SCHEMA', 'ALTER TRIGGER', 'ALTER EXTENSION')
        EXECUTE FUNCTION threadline.on_ddl_command_end();
    CREATE EVENT TRIGGER threadline_sql_drop ON sql_drop
        WHEN TAG IN ('DROP TABLE', 'DROP FOREIGN TABLE', 'DROP SCHEMA', 'DROP OWNED', 'DROP TRIGGER',
                     'DROP INDEX', 'DROP EXTENSION', 'ALTER TABLE', 'ALTER EXTENSION')
        EXECUTE FUNCTION threadline.on_sql_drop();
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'threadline: only a superuser can create the event triggers that follow schema changes of audited tables'
        USING HINT = 'Install as a superuser, or run SELECT threadline.refresh_table(''schema.table'') after each ALTER TABLE of an audited table.';
END
$$;

