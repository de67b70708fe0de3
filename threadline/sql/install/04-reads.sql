---------------------------------------------------------------------------------------
-- Reads: rendering a row key the way capture renders table_pk.
---------------------------------------------------------------------------------------

-- The table_pk object capture stored for a row of p_schema.p_table: `key` is a scalar
-- (single-column keys) or an object naming every key column, with string or number
-- values. Each value is read as the column's live type and rendered as capture renders
-- it, so "0042" finds the row whose integer key is 42. Only PostgreSQL's own input
-- functions run: a value is cast to the type under any domain (whose checks the table
-- owner may write), an enum label is looked up in pg_enum, and a citext is taken as
-- given. Key columns come from the policy or, for a table no longer audited, from its
-- latest captured change; a column that no longer exists is compared as given. Null
-- when the table has no trail at all.
CREATE FUNCTION threadline.render_key(p_schema text, p_table text, key jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_rel oid := (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = p_schema AND c.relname = p_table);
    v_cols text[];
    v_given text[];
    v_col text;
    v_value jsonb;
    v_input text;
    v_kind text;
    v_base oid;
    v_type text;
    v_plain_type text;
    v_typed text;
    v_plain text;
    v_out jsonb := '{}';
    v_form text;
BEGIN
    SELECT t.key_columns INTO v_cols FROM threadline.audited_tables t
     WHERE t.table_schema = p_schema AND t.table_name = p_table;
    IF v_cols IS NULL THEN
        SELECT array_agg(k ORDER BY k) INTO v_cols
          FROM (SELECT c.table_pk FROM threadline.audit_changes c
                 WHERE c.table_schema = p_schema AND c.table_name = p_table AND c.table_pk <> '{}'
                 ORDER BY c.captured_at DESC, c.id DESC LIMIT 1) latest,
               jsonb_object_keys(latest.table_pk) k;
    END IF;
    IF v_cols IS NULL THEN
        RETURN NULL;
    END IF;
    v_form := (SELECT string_agg(format('%s=...', c), ',') FROM unnest(v_cols) c);
    IF jsonb_typeof(key) = 'object' THEN
        v_given := ARRAY(SELECT jsonb_object_keys(key));
        IF NOT (v_given @> v_cols AND v_cols @> v_given) THEN
            RAISE EXCEPTION 'threadline: the key of %.% has the columns (%), got (%)', p_schema, p_table,
                array_to_string(v_cols, ', '), array_to_string(v_given, ', ')
                USING ERRCODE = '22023', HINT = format('Name every key column once: %s.', v_form);
        END IF;
    ELSIF cardinality(v_cols) > 1 THEN
        RAISE EXCEPTION 'threadline: %.% has a composite key (%): one value cannot name a row', p_schema, p_table,
            array_to_string(v_cols, ', ')
            USING ERRCODE = '22023', HINT = format('Name every key column: %s.', v_form);
    ELSE
        key := jsonb_build_object(v_cols[1], key);
    END IF;
    FOREACH v_col IN ARRAY v_cols LOOP
        v_value := key -> v_col;
        IF jsonb_typeof(v_value) NOT IN ('string', 'number') THEN
            RAISE EXCEPTION 'threadline: key column % must be a string or a number, got %', v_col, jsonb_typeof(v_value)
                USING ERRCODE = '22023';
        END IF;
        v_input := v_value #>> '{}';
        v_kind := NULL;
        SELECT threadline.key_kind(a.atttypid), threadline.base_type(a.atttypid),
               format_type(threadline.base_type(a.atttypid), CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),
               format_type(threadline.base_type(a.atttypid), NULL)
          INTO v_kind, v_base, v_type, v_plain_type
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = v_rel AND a.attname = v_col AND a.attnum > 0 AND NOT a.attisdropped;
        IF v_kind IS NULL OR v_kind = 'citext' THEN
            v_out := v_out || jsonb_build_object(v_col, v_input);
            CONTINUE;
        END IF;
        IF v_kind = 'enum' THEN
            IF NOT EXISTS (SELECT 1 FROM pg_enum e WHERE e.enumtypid = v_base AND e.enumlabel = v_input) THEN
                RAISE EXCEPTION 'threadline: % is not a valid % for key column %', v_value, v_type, v_col
                    USING ERRCODE = '22023';
            END IF;
            v_out := v_out || jsonb_build_object(v_col, v_input);
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('SELECT to_jsonb(CAST($1 AS %s)) #>> ''{}'', to_jsonb(CAST($1 AS %s)) #>> ''{}''',
                           v_type, v_plain_type)
               INTO v_typed, v_plain USING v_input;
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'threadline: % is not a valid % for key column %', v_value, v_type, v_col
                USING ERRCODE = '22023';
        END;
        IF rtrim(v_typed) IS DISTINCT FROM rtrim(v_plain) THEN
            RAISE EXCEPTION 'threadline: % does not fit key column % (%)', v_value, v_col, v_type
                USING ERRCODE = '22023';
        END IF;
        v_out := v_out || jsonb_build_object(v_col, v_typed);
    END LOOP;
    RETURN v_out;
END
$$;

-- Whether a row image of the partitioned table p_schema.p_table belongs in the
-- partition named p_partition (as a truncate change records it): the partition's
-- constraint evaluated over the image's partition-key columns alone, read as
-- PostgreSQL's own types or enums. Null when that cannot be known without running
-- code the table owner may have written (a key expression, a key of another type), or
-- when the table or the partition no longer exists.
CREATE FUNCTION threadline.row_in_partition(p_schema text, p_table text, p_partition text, data jsonb)
RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_parent regclass := (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = p_schema AND c.relname = p_table);
    v_partition regclass := to_regclass(p_partition);
    v_condition text;
    v_columns text;
    v_inside boolean;
BEGIN
    IF v_parent IS NULL OR v_partition IS NULL THEN
        RETURN NULL;
    END IF;
    v_condition := pg_get_partition_constraintdef(v_partition);
    IF v_condition IS NULL THEN
        RETURN true;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_partition_ancestors(v_partition) x
                 JOIN pg_partitioned_table p ON p.partrelid = x.relid
                WHERE p.partexprs IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    SELECT string_agg(DISTINCT format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', '),
           bool_and(t.typtype = 'e' OR (a.atttypid < 16384 AND t.typtype <> 'd'))
      INTO v_columns, v_inside
      FROM pg_partition_ancestors(v_partition) x
      JOIN pg_partitioned_table p ON p.partrelid = x.relid
      CROSS JOIN LATERAL unnest(p.partattrs::int2[]) k(attnum)
      JOIN pg_attribute a ON a.attrelid = x.relid AND a.attnum = k.attnum
      JOIN pg_type t ON t.oid = a.atttypid;
    IF v_columns IS NULL OR NOT v_inside THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE format('SELECT %s FROM jsonb_to_record($1) AS r(%s)', v_condition, v_columns)
           INTO v_inside USING data;
    EXCEPTION WHEN data_exception OR ambiguous_function OR undefined_function THEN
        RETURN NULL;
    END;
    RETURN coalesce(v_inside, false);
END
$$;

