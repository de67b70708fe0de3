---------------------------------------------------------------------------------------
-- Policy: validation, key resolution, generation of the capture function.
---------------------------------------------------------------------------------------

-- Checks that a relation is a table. Table arguments are regclass, so a name is
-- resolved in the caller's search_path and a missing table is refused by PostgreSQL.
CREATE FUNCTION threadline.resolve_table(target regclass) RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'threadline: no table named' USING ERRCODE = '22023',
            HINT = 'The correct format looks like ''public.posts''.';
    END IF;
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = target) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'threadline: % is not a table', target USING ERRCODE = '42809';
    END IF;
    RETURN target;
END
$$;

-- Reads a JSON array of column names from a policy, deduplicated and sorted. Names are
-- exact identifiers: nothing is trimmed, so "secret " names only a column of that name.
CREATE FUNCTION threadline.policy_columns(policy jsonb, key text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_value jsonb := policy -> key;
BEGIN
    IF v_value IS NULL OR jsonb_typeof(v_value) = 'null' THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(v_value) <> 'array' THEN
        RAISE EXCEPTION 'threadline: policy "%" must be an array of column names, got %', key, jsonb_typeof(v_value)
            USING ERRCODE = '22023', HINT = format('The correct format looks like {"%s": ["column"]}.', key);
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_value) e WHERE jsonb_typeof(e) <> 'string' OR e #>> '{}' = '') THEN
        RAISE EXCEPTION 'threadline: policy "%" must hold non-empty column names only', key
            USING ERRCODE = '22023', HINT = format('The correct format looks like {"%s": ["column"]}.', key);
    END IF;
    RETURN ARRAY(SELECT DISTINCT e FROM jsonb_array_elements_text(v_value) e ORDER BY 1);
END
$$;

-- Validates a policy against a table and returns it normalized: every key present,
-- arrays sorted, primary_key null when the table's own key is used.
CREATE FUNCTION threadline.normalize_policy(rel regclass, policy jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_key text;
    v_exclude text[];
    v_mask text[];
    v_ignore text[];
    v_pk text[];
    v_placeholder text := '[REDACTED]';
    v_changed_from boolean := true;
    v_missing text;
    v_hint text;
BEGIN
    IF policy IS NULL THEN
        policy := '{}';
    END IF;
    IF jsonb_typeof(policy) <> 'object' THEN
        RAISE EXCEPTION 'threadline: a policy must be a JSON object' USING ERRCODE = '22023',
            HINT = 'The correct format looks like {"mask": ["email"], "exclude": ["password_hash"]}.';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(policy) LOOP
        IF v_key NOT IN ('exclude', 'mask', 'mask_placeholder', 'ignore_changes', 'primary_key', 'changed_from') THEN
            v_hint := CASE
                WHEN v_key IN ('primary_keys', 'pk', 'pkey', 'primary', 'key', 'keys') THEN 'Did you mean "primary_key"?'
                WHEN v_key IN ('excludes', 'excluded', 'except', 'skip', 'omit') THEN 'Did you mean "exclude"?'
                WHEN v_key IN ('masks', 'masked', 'redact', 'redacted', 'filter', 'filtered') THEN 'Did you mean "mask"?'
                WHEN v_key IN ('ignore', 'ignored', 'ignore_change', 'except_columns') THEN 'Did you mean "ignore_changes"?'
                WHEN v_key IN ('placeholder', 'mask_with') THEN 'Did you mean "mask_placeholder"?'
                WHEN v_key IN ('store_changed_from', 'changed_from_enabled') THEN 'Did you mean "changed_from"?'
                ELSE 'Known keys: exclude, mask, mask_placeholder, ignore_changes, primary_key, changed_from.'
            END;
            RAISE EXCEPTION 'threadline: unknown policy key "%" for %', v_key, rel USING ERRCODE = '22023', HINT = v_hint;
        END IF;
    END LOOP;
    v_exclude := threadline.policy_columns(policy, 'exclude');
    v_mask := threadline.policy_columns(policy, 'mask');
    v_ignore := threadline.policy_columns(policy, 'ignore_changes');
    IF policy ? 'primary_key' AND jsonb_typeof(policy -> 'primary_key') <> 'null' THEN
        IF jsonb_typeof(policy -> 'primary_key') <> 'array' OR jsonb_array_length(policy -> 'primary_key') = 0 THEN
            RAISE EXCEPTION 'threadline: policy "primary_key" must be a non-empty array of column names'
                USING ERRCODE = '22023', HINT = 'The correct format looks like {"primary_key": ["tenant_id", "id"]}.';
        END IF;
        IF EXISTS (SELECT 1 FROM jsonb_array_elements(policy -> 'primary_key') e WHERE jsonb_typeof(e) <> 'string' OR e #>> '{}' = '') THEN
            RAISE EXCEPTION 'threadline: policy "primary_key" must hold non-empty column names only'
                USING ERRCODE = '22023', HINT = 'The correct format looks like {"primary_key": ["tenant_id", "id"]}.';
        END IF;
        -- key order is the order given
        v_pk := ARRAY(SELECT e FROM jsonb_array_elements_text(policy -> 'primary_key') WITH ORDINALITY AS x(e, n) ORDER BY n);
        IF cardinality(v_pk) <> (SELECT count(DISTINCT x) FROM unnest(v_pk) x) THEN
            RAISE EXCEPTION 'threadline: policy "primary_key" names a column twice' USING ERRCODE = '22023';
        END IF;
    END IF;
    IF policy ? 'mask_placeholder' THEN
        IF jsonb_typeof(policy -> 'mask_placeholder') <> 'string' THEN
            RAISE EXCEPTION 'threadline: policy "mask_placeholder" must be a string' USING ERRCODE = '22023',
                HINT = 'The correct format looks like {"mask_placeholder": "[REDACTED]"}.';
        END IF;
        v_placeholder := policy ->> 'mask_placeholder';
        IF v_placeholder = '' OR char_length(v_placeholder) > 200 OR v_placeholder ~ '[[:cntrl:]]' THEN
            RAISE EXCEPTION 'threadline: policy "mask_placeholder" must be 1 to 200 characters without control characters'
                USING ERRCODE = '22023';
        END IF;
    END IF;
    IF policy ? 'changed_from' THEN
        IF jsonb_typeof(policy -> 'changed_from') <> 'boolean' THEN
            RAISE EXCEPTION 'threadline: policy "changed_from" must be true or false' USING ERRCODE = '22023',
                HINT = 'The correct format looks like {"changed_from": false}.';
        END IF;
        v_changed_from := (policy -> 'changed_from')::boolean;
    END IF;
    SELECT string_agg(format('%I', c), ', ') INTO v_missing
      FROM unnest(v_exclude || v_mask || v_ignore || coalesce(v_pk, '{}')) c
     WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = rel AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'threadline: % has no column %', rel, v_missing USING ERRCODE = '42703';
    END IF;
    IF v_exclude && v_mask THEN
        RAISE EXCEPTION 'threadline: policy for % both masks and excludes %', rel,
            (SELECT string_agg(c, ', ') FROM unnest(v_exclude) c WHERE c = ANY (v_mask))
            USING ERRCODE = '22023', HINT = 'Exclude a column to keep nothing of it, or mask it to keep only the fact that it changed; not both.';
    END IF;
    RETURN jsonb_build_object(
        'exclude', to_jsonb(v_exclude),
        'mask', to_jsonb(v_mask),
        'mask_placeholder', v_placeholder,
        'ignore_changes', to_jsonb(v_ignore),
        'primary_key', to_jsonb(v_pk),
        'changed_from', v_changed_from);
END
$$;

-- Whether a unique index tells key values apart exactly as capture does: each key column
-- indexed with the column's own collation, and that collation deterministic (equal only
-- when byte-wise equal). Otherwise 'a' and 'A' could be two rows to the index and one key
-- to capture's join, or the reverse.
CREATE FUNCTION threadline.index_compares_as_columns(idx oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT NOT EXISTS (
        SELECT 1
          FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey[0:i.indnkeyatts - 1]::int2[], i.indcollation[0:i.indnkeyatts - 1]::oid[]) AS k(attnum, coll)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          LEFT JOIN pg_collation c ON c.oid = a.attcollation
         WHERE i.indexrelid = idx
           AND (k.coll IS DISTINCT FROM a.attcollation OR NOT coalesce(c.collisdeterministic, true)));
$$;

-- Whether a valid, unique, non-partial, non-deferrable index over exactly these NOT NULL
-- columns, comparing them as they compare, backs a policy's primary_key.
CREATE FUNCTION threadline.key_index_exists(rel regclass, cols text[]) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_index i
         WHERE i.indrelid = rel AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
           AND i.indexprs IS NULL AND i.indimmediate AND i.indnkeyatts = cardinality(cols)
           AND threadline.index_compares_as_columns(i.indexrelid)
           AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
                  FROM pg_attribute a
                 WHERE a.attrelid = rel AND a.attnum = ANY (i.indkey[0:i.indnkeyatts - 1]) AND a.attnotnull)
               = (SELECT array_agg(x ORDER BY x) FROM unnest(cols) x));
$$;

-- The key columns capture identifies rows by: the policy's primary_key, which a
-- unique index over non-null columns must back, or the table's primary key.
CREATE FUNCTION threadline.key_columns(rel regclass, policy jsonb) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_pk text[];
    v_candidate text;
    v_bad text;
    v_redacted text[] := threadline.policy_columns(policy, 'mask') || threadline.policy_columns(policy, 'exclude');
BEGIN
    IF jsonb_typeof(policy -> 'primary_key') = 'array' THEN
        v_pk := ARRAY(SELECT jsonb_array_elements_text(policy -> 'primary_key'));
        IF NOT threadline.key_index_exists(rel, v_pk) THEN
            RAISE EXCEPTION 'threadline: no unique index of % covers exactly the key (%) over NOT NULL columns', rel, array_to_string(v_pk, ', ')
                USING ERRCODE = '22023',
                      HINT = 'Create a unique, non-partial, non-deferrable index on those columns, with their own deterministic collations, and make them NOT NULL, or name the columns of an existing one.';
        END IF;
    ELSE
        SELECT array_agg(a.attname::text ORDER BY k.n) INTO v_pk
          FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, n)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = rel AND i.indisprimary;
        IF v_pk IS NOT NULL AND NOT (SELECT i.indimmediate FROM pg_index i WHERE i.indrelid = rel AND i.indisprimary) THEN
            RAISE EXCEPTION 'threadline: the primary key of % is DEFERRABLE', rel USING ERRCODE = '22023',
                DETAIL = 'A deferred key may repeat while a statement runs, so capture could not tell its rows apart.',
                HINT = 'Make the key NOT DEFERRABLE, or name the columns of a non-deferrable unique index: {"primary_key": ["column"]}.';
        END IF;
        IF v_pk IS NOT NULL AND NOT (SELECT threadline.index_compares_as_columns(i.indexrelid)
                                       FROM pg_index i WHERE i.indrelid = rel AND i.indisprimary) THEN
            RAISE EXCEPTION 'threadline: the primary key of % does not compare its columns as they do', rel USING ERRCODE = '22023',
                DETAIL = 'Its index uses another collation than a key column, or a nondeterministic one, so capture could not match rows by key.',
                HINT = 'Key the table on columns with a deterministic collation, indexed with it, or name other key columns in the policy.';
        END IF;
        IF v_pk IS NULL THEN
            SELECT format('%s (%s)', i.indexrelid::regclass,
                          (SELECT string_agg(format('"%s"', a.attname), ', ' ORDER BY k.n)
                             FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, n)
                             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum))
              INTO v_candidate
              FROM pg_index i
             WHERE i.indrelid = rel AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
               AND i.indexprs IS NULL AND i.indimmediate
               AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                WHERE a.attrelid = rel AND a.attnum = ANY (i.indkey[0:i.indnkeyatts - 1]) AND NOT a.attnotnull)
             LIMIT 1;
            RAISE EXCEPTION 'threadline: % has no primary key', rel USING ERRCODE = '22023',
                DETAIL = CASE WHEN v_candidate IS NULL THEN 'No unique index over NOT NULL columns could stand in for one.'
                              ELSE 'The unique index ' || v_candidate || ' could identify its rows.' END,
                HINT = 'Add a primary key, or name the key columns in the policy: {"primary_key": ["column"]}.';
        END IF;
    END IF;
    IF v_pk && v_redacted THEN
        RAISE EXCEPTION 'threadline: key column % of % cannot be masked or excluded',
            (SELECT string_agg(c, ', ') FROM unnest(v_pk) c WHERE c = ANY (v_redacted)), rel
            USING ERRCODE = '22023', HINT = 'Redacting a key column would erase which row changed.';
    END IF;
    SELECT string_agg(format('%I (%s)', a.attname, format_type(a.atttypid, a.atttypmod)), ', ') INTO v_bad
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attname = ANY (v_pk)
       AND threadline.key_kind(a.atttypid) IS NULL;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'threadline: key column % of % has a type capture cannot render stably', v_bad, rel
            USING ERRCODE = '22023',
                  HINT = 'Key columns may be integers, text, uuid, date, timestamp (without time zone) or enums.';
    END IF;
    RETURN v_pk;
END
$$;

-- Types. Capture and the read helpers never call code that a table owner can define:
-- casts (to_jsonb calls a type's cast to json), operators, domain checks. PostgreSQL's
-- own types (oids below 16384, the first a user object gets) carry none of it, and
-- neither do the containers of them; other types are rendered by their output
-- functions (format's %s), which only a superuser can write, and compared by their
-- stored bytes.

-- The type a domain is over, through domains of domains; the type itself otherwise.
CREATE FUNCTION threadline.base_type(typ oid) RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE chain(oid, base) AS (
        SELECT t.oid, t.typbasetype FROM pg_type t WHERE t.oid = typ
        UNION ALL
        SELECT t.oid, t.typbasetype FROM chain JOIN pg_type t ON t.oid = chain.base WHERE chain.base <> 0)
    SELECT oid FROM chain WHERE base = 0;
$$;

-- Whether a type is PostgreSQL's own (after domains), so that to_jsonb and its
-- operators run only PostgreSQL's code.
CREATE FUNCTION threadline.builtin_type(typ oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT threadline.base_type(typ) < 16384;
$$;

-- How a key column of this type is rendered and looked up: 'text' (rendered with its
-- output), 'json' (rendered as to_jsonb renders it: ISO dates and times), 'enum' (its
-- label) or 'citext'; null for a type keys may not have.
CREATE FUNCTION threadline.key_kind(typ oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN b.oid IN ('pg_catalog.int2'::regtype, 'pg_catalog.int4'::regtype, 'pg_catalog.int8'::regtype,
                       'pg_catalog.text'::regtype, 'pg_catalog.varchar'::regtype, 'pg_catalog.bpchar'::regtype,
                       'pg_catalog.uuid'::regtype) THEN 'text'
        WHEN b.oid IN ('pg_catalog.date'::regtype, 'pg_catalog.timestamp'::regtype) THEN 'json'
        WHEN b.typtype = 'e' THEN 'enum'
        WHEN b.typtype = 'b' AND b.typname = 'citext' THEN 'citext'
    END
      FROM pg_type b WHERE b.oid = threadline.base_type(typ);
$$;

-- SQL of one column of row `alias` as a jsonb-ready value: the column itself for
-- PostgreSQL's own types, else its text output (null stays null).
CREATE FUNCTION threadline.value_sql(rel regclass, alias text, col text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN threadline.builtin_type(a.atttypid) THEN format('%I.%I', alias, col)
                ELSE format('CASE WHEN pg_catalog.num_nulls(%1$I.%2$I) = 0 THEN pg_catalog.format(''%%s'', %1$I.%2$I) END', alias, col)
           END
      FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
$$;

-- SQL of a jsonb object over the given columns of a transition-table row `alias`,
-- with masked columns replaced by the placeholder. Chunks of 50 pairs keep under
-- the 100-argument limit of jsonb_build_object.
CREATE FUNCTION threadline.image_sql(rel regclass, alias text, cols text[], mask text[], placeholder text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(string_agg(chunk, ' || '), '''{}''::jsonb')
      FROM (SELECT 'jsonb_build_object(' || string_agg(
                       CASE WHEN c = ANY (mask) THEN format('%L, %L::text', c, placeholder)
                            ELSE format('%L, %s', c, threadline.value_sql(rel, alias, c)) END, ', ' ORDER BY n) || ')' AS chunk
              FROM unnest(cols) WITH ORDINALITY AS x(c, n)
             GROUP BY (n - 1) / 50
             ORDER BY (n - 1) / 50) chunks;
$$;

-- SQL of the table_pk object of a transition-table row: each key column rendered as
-- text, dates and timestamps as to_jsonb renders them (whatever the session's DateStyle).
CREATE FUNCTION threadline.key_sql(rel regclass, alias text, key_cols text[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'jsonb_build_object(' || string_agg(
               CASE threadline.key_kind(a.atttypid)
                    WHEN 'json' THEN format('%L, to_jsonb(%I.%I) #>> ''{}''', k.c, alias, k.c)
                    WHEN 'text' THEN format('%L, %I.%I::text', k.c, alias, k.c)
                    ELSE format('%L, pg_catalog.format(''%%s'', %I.%I)', k.c, alias, k.c) END, ', ' ORDER BY k.n) || ')'
      FROM unnest(key_cols) WITH ORDINALITY AS k(c, n)
      JOIN pg_attribute a ON a.attrelid = rel AND a.attname = k.c;
$$;

-- SQL that tells whether a column differs between new row n and old row o, so that any
-- change of the stored value counts (1 -> 1.000, 0 -> -0, 'a' -> 'A' under a
-- case-insensitive collation): types whose equality is identity compare with it,
-- text byte-wise, everything else by its stored bytes (record_image_eq), which calls
-- no operator of the type.
CREATE FUNCTION threadline.differs_sql(rel regclass, col text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN threadline.base_type(a.atttypid) IN (
                 'pg_catalog.int2'::regtype, 'pg_catalog.int4'::regtype, 'pg_catalog.int8'::regtype,
                 'pg_catalog.bool'::regtype, 'pg_catalog.uuid'::regtype, 'pg_catalog.date'::regtype,
                 'pg_catalog.timestamp'::regtype, 'pg_catalog.timestamptz'::regtype, 'pg_catalog.oid'::regtype)
            THEN format('n.%1$I IS DISTINCT FROM o.%1$I', col)
        WHEN threadline.base_type(a.atttypid) IN ('pg_catalog.text'::regtype, 'pg_catalog.varchar'::regtype)
            THEN format('n.%1$I COLLATE "C" IS DISTINCT FROM o.%1$I COLLATE "C"', col)
        ELSE format('NOT pg_catalog.record_image_eq(ROW(n.%1$I), ROW(o.%1$I))', col)
    END
      FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
$$;

-- SET clauses that pin the session settings the given columns' stored text depends on, so
-- a writer cannot change what the trail says (SET extra_float_digits = -15 would store
-- 1490000 as 1000000). Only the settings the columns need, since each costs something on
-- every captured statement; all of them for types outside PostgreSQL's own and for
-- ranges and composites, whose text output follows them all. TimeZone is left alone for
-- PostgreSQL's own time types: to_jsonb writes them in ISO 8601 with their offset, so the
-- session's zone changes the notation of an instant, never which instant (and pinning it
-- would cost a single-row write about a sixth of its speed).
CREATE FUNCTION threadline.output_settings(rel regclass, cols text[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH types AS (
        SELECT coalesce(nullif(e.oid, 0), b.oid) AS oid, coalesce(e.typtype, b.typtype) AS typtype
          FROM pg_attribute a
          JOIN pg_type b ON b.oid = threadline.base_type(a.atttypid)
          LEFT JOIN pg_type e ON e.oid = threadline.base_type(nullif(b.typelem, 0)) AND b.typcategory = 'A'
         WHERE a.attrelid = rel AND a.attname = ANY (cols) AND a.attnum > 0 AND NOT a.attisdropped),
    needs AS (
        SELECT bool_or(t.oid >= 16384 OR t.typtype IN ('r', 'm', 'c')) AS all_of_them,
               bool_or(t.oid IN ('pg_catalog.float4'::regtype, 'pg_catalog.float8'::regtype)) AS floats,
               bool_or(t.oid = 'pg_catalog.interval'::regtype) AS intervals,
               bool_or(t.oid = 'pg_catalog.bytea'::regtype) AS bytes,
               bool_or(t.oid = 'pg_catalog.money'::regtype) AS money
          FROM types t)
    SELECT concat(
        CASE WHEN all_of_them OR floats THEN ' SET extra_float_digits = 1' END,
        CASE WHEN all_of_them THEN ' SET TimeZone = ''UTC''' END,
        CASE WHEN all_of_them OR intervals THEN ' SET IntervalStyle = ''postgres''' END,
        CASE WHEN all_of_them OR bytes THEN ' SET bytea_output = ''hex''' END,
        CASE WHEN all_of_them OR money THEN ' SET lc_monetary = ''C''' END,
        CASE WHEN all_of_them THEN ' SET DateStyle = ''ISO, MDY''' END)
      FROM needs;
$$;

-- (Re)creates the capture function of an audited table from its stored policy and
-- the table's current columns, and the statement-level triggers on the table and on
-- every partition below it.
CREATE FUNCTION threadline.generate_capture(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r threadline.audited_tables;
    v_cols text[];
    v_exclude text[];
    v_mask text[];
    v_ignore text[];
    v_compared text[];
    v_placeholder text;
    v_changed_from boolean;
    v_key_join text;
    v_key_new text;
    v_key_old text;
    v_differs text[];
    v_changed text;
    v_unchanged text;
    v_any_change text;
    v_cf text;
    v_body text;
    v_node regclass;
BEGIN
    SELECT * INTO r FROM threadline.audited_tables t WHERE t.relid = rel;
    v_exclude := threadline.policy_columns(r.policy, 'exclude');
    v_mask := threadline.policy_columns(r.policy, 'mask');
    v_ignore := threadline.policy_columns(r.policy, 'ignore_changes');
    v_placeholder := r.policy ->> 'mask_placeholder';
    v_changed_from := (r.policy -> 'changed_from')::boolean;
    v_cols := ARRAY(SELECT a.attname::text FROM pg_attribute a
                     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
                       AND NOT a.attname = ANY (v_exclude)
                     ORDER BY a.attnum);
    v_compared := ARRAY(SELECT c FROM unnest(v_cols) c WHERE NOT c = ANY (v_ignore) ORDER BY c);
    v_key_join := (SELECT string_agg(CASE threadline.key_kind(a.atttypid)
                                         WHEN 'enum' THEN format('pg_catalog.format(''%%s'', n.%1$I) = pg_catalog.format(''%%s'', o.%1$I)', k)
                                         ELSE format('n.%1$I = o.%1$I', k) END, ' AND ')
                     FROM unnest(r.key_columns) k JOIN pg_attribute a ON a.attrelid = rel AND a.attname = k);
    v_key_new := threadline.key_sql(rel, 'n', r.key_columns);
    v_key_old := threadline.key_sql(rel, 'o', r.key_columns);
    v_differs := ARRAY(SELECT threadline.differs_sql(rel, c) FROM unnest(v_compared) c ORDER BY c);
    IF cardinality(v_compared) = 0 THEN
        v_changed := '''{}''::text[]';
        v_unchanged := '''{}''::text[]';
        v_any_change := 'false';
    ELSE
        v_changed := 'array_remove(ARRAY[' || (SELECT string_agg(format('CASE WHEN %s THEN %L END', d, c), ', ' ORDER BY n)
                         FROM unnest(v_differs, v_compared) WITH ORDINALITY AS x(d, c, n)) || ']::text[], NULL)';
        v_unchanged := 'array_remove(ARRAY[' || (SELECT string_agg(format('CASE WHEN NOT (%s) THEN %L END', d, c), ', ' ORDER BY n)
                         FROM unnest(v_differs, v_compared) WITH ORDINALITY AS x(d, c, n)) || ']::text[], NULL)';
        v_any_change := (SELECT string_agg('(' || d || ')', ' OR ') FROM unnest(v_differs) d);
    END IF;
    IF v_changed_from THEN
        v_cf := format('(%s) - %s', threadline.image_sql(rel, 'o', v_compared, v_mask, v_placeholder), v_unchanged);
    ELSE
        v_cf := 'NULL::jsonb';
    END IF;

    v_body := format($f$
DECLARE
    v_at timestamptz := clock_timestamp();
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO threadline.audit_changes
            (transaction_id, table_schema, table_name, table_pk, op, data, masked_fields, excluded_fields, captured_at)
        SELECT (SELECT threadline.transaction_for_capture(v_at)), %1$L, %2$L, %3$s, 'insert', %5$s, %13$s, %14$s, v_at
          FROM threadline_new n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO threadline.audit_changes
            (transaction_id, table_schema, table_name, table_pk, op, data, masked_fields, excluded_fields, captured_at)
        SELECT (SELECT threadline.transaction_for_capture(v_at)), %1$L, %2$L, %4$s, 'delete', %6$s, %13$s, %14$s, v_at
          FROM threadline_old o;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO threadline.audit_changes
            (transaction_id, table_schema, table_name, table_pk, op, data, changed_fields, changed_from,
             masked_fields, excluded_fields, from_update, captured_at)
        SELECT (SELECT threadline.transaction_for_capture(v_at)), %1$L, %2$L,
               CASE WHEN n.%7$I IS NULL THEN %4$s ELSE %3$s END,
               CASE WHEN n.%7$I IS NULL THEN 'delete' WHEN o.%7$I IS NULL THEN 'insert' ELSE 'update' END,
               CASE WHEN n.%7$I IS NULL THEN %6$s ELSE %5$s END,
               CASE WHEN n.%7$I IS NOT NULL AND o.%7$I IS NOT NULL THEN %9$s END,
               CASE WHEN n.%7$I IS NOT NULL AND o.%7$I IS NOT NULL THEN %10$s END,
               %13$s, %14$s,
               n.%7$I IS NULL OR o.%7$I IS NULL,
               v_at
          FROM threadline_new n FULL JOIN threadline_old o ON %8$s
         WHERE n.%7$I IS NULL OR o.%7$I IS NULL OR %11$s;
    ELSE
        INSERT INTO threadline.audit_changes
            (transaction_id, table_schema, table_name, table_pk, op, data, masked_fields, excluded_fields, captured_at)
        VALUES (threadline.transaction_for_capture(v_at), %1$L, %2$L, '{}', 'truncate',
                CASE WHEN TG_RELID <> %12$s THEN jsonb_build_object('partition', format('%%I.%%I', TG_TABLE_SCHEMA, TG_TABLE_NAME)) END,
                %13$s, %14$s, v_at);
    END IF;
    RETURN NULL;
END
$f$,
        r.table_schema, r.table_name, v_key_new, v_key_old,
        threadline.image_sql(rel, 'n', v_cols, v_mask, v_placeholder),
        threadline.image_sql(rel, 'o', v_cols, v_mask, v_placeholder),
        r.key_columns[1], v_key_join, v_changed, v_cf, v_any_change, rel::oid,
        -- the policy's redaction, recorded with each change as constants (nothing per row)
        CASE WHEN cardinality(v_mask) > 0 THEN format('%L::text[]', v_mask) ELSE 'NULL::text[]' END,
        CASE WHEN cardinality(v_exclude) > 0 THEN format('%L::text[]', v_exclude) ELSE 'NULL::text[]' END);

    EXECUTE format('CREATE OR REPLACE FUNCTION threadline.%I() RETURNS trigger LANGUAGE plpgsql '
                   'SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET work_mem = ''64MB''%s AS %L',
                   r.function_name, threadline.output_settings(rel, v_cols), v_body);
    EXECUTE format('COMMENT ON FUNCTION threadline.%I() IS %L', r.function_name,
                   format('Threadline capture for %I.%I; generated by threadline.audit_table, do not edit', r.table_schema, r.table_name));
    EXECUTE format('REVOKE ALL ON FUNCTION threadline.%I() FROM PUBLIC', r.function_name);
    PERFORM threadline.hand_to_capture_role(r.function_name);

    FOR v_node IN SELECT rel UNION SELECT t.relid FROM pg_partition_tree(rel) t LOOP
        PERFORM threadline.attach_triggers(v_node, r.function_name);
    END LOOP;
    PERFORM threadline.detach_stray_triggers(rel, r.function_name);
END
$$;

-- Makes the capture role the owner of a capture function, so that it runs as that role.
-- Changing an owner needs the new owner to have CREATE on the schema: it has it only
-- for that statement. Without the role (installed by a role that may not create roles)
-- the function stays the installer's.
CREATE FUNCTION threadline.hand_to_capture_role(function_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'threadline_capture') THEN
        RETURN;
    END IF;
    IF NOT pg_has_role(current_user, 'threadline_capture', 'MEMBER') THEN
        RETURN;
    END IF;
    GRANT CREATE ON SCHEMA threadline TO threadline_capture;
    EXECUTE format('ALTER FUNCTION threadline.%I() OWNER TO threadline_capture', function_name);
    REVOKE CREATE ON SCHEMA threadline FROM threadline_capture;
END
$$;

-- Refuses a table whose writes capture could not see whole: a temporary table, a table
-- in an inheritance hierarchy (INHERITS: a write through the parent reaches children
-- whose statement triggers do not fire), and an audited table that became a partition
-- (its writes would be captured under two names, or not at all).
CREATE FUNCTION threadline.check_layout(rel regclass) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_other regclass;
BEGIN
    IF (SELECT c.relpersistence FROM pg_class c WHERE c.oid = rel) = 't' THEN
        RAISE EXCEPTION 'threadline: % is a temporary table and cannot be audited', rel USING ERRCODE = '22023',
            HINT = 'A temporary table disappears with its session; audit a permanent table.';
    END IF;
    IF (SELECT c.relispartition FROM pg_class c WHERE c.oid = rel) THEN
        RAISE EXCEPTION 'threadline: % is a partition; audit its partitioned table', rel USING ERRCODE = '22023',
            HINT = 'Auditing the parent captures writes to every partition, present and future, under the parent''s name.';
    END IF;
    SELECT i.inhparent INTO v_other FROM pg_inherits i WHERE i.inhrelid = rel LIMIT 1;
    IF v_other IS NULL THEN
        SELECT i.inhrelid INTO v_other
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent
         WHERE i.inhparent = rel AND c.relkind = 'r' LIMIT 1;
    END IF;
    IF v_other IS NOT NULL THEN
        RAISE EXCEPTION 'threadline: % is in a table inheritance hierarchy (with %), which capture cannot follow', rel, v_other
            USING ERRCODE = '22023',
                  HINT = 'A write through an inheritance parent reaches its children without firing their triggers; use declarative partitioning (PARTITION BY) instead of INHERITS.';
    END IF;
END
$$;

-- Records what happened to an audited table's shape or capture.
CREATE FUNCTION threadline.record_schema_event(p_schema text, p_table text, command text, objects text[])
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO threadline.schema_events (table_schema, table_name, command, objects)
    VALUES (p_schema, p_table, command, coalesce(objects, '{}'));
$$;

-- Creates or replaces the capture triggers of one table (or partition). TRUNCATE is
-- caught on tables that hold rows only: truncating a partitioned table fires the
-- trigger of each partition it empties.
CREATE FUNCTION threadline.attach_triggers(rel regclass, function_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('CREATE OR REPLACE TRIGGER threadline_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS threadline_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION threadline.%I()', rel, function_name);
    EXECUTE format('CREATE OR REPLACE TRIGGER threadline_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS threadline_old '
                   'NEW TABLE AS threadline_new FOR EACH STATEMENT EXECUTE FUNCTION threadline.%I()', rel, function_name);
    EXECUTE format('CREATE OR REPLACE TRIGGER threadline_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS threadline_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION threadline.%I()', rel, function_name);
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = rel) = 'r' THEN
        EXECUTE format('CREATE OR REPLACE TRIGGER threadline_truncate AFTER TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION threadline.%I()', rel, function_name);
    ELSIF EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = rel AND tg.tgname = 'threadline_truncate') THEN
        EXECUTE format('DROP TRIGGER threadline_truncate ON %s', rel);
    END IF;
END
$$;

-- Drops the capture triggers that call an audited table's function from tables that
-- are no longer in its partition tree (a detached partition).
CREATE FUNCTION threadline.detach_stray_triggers(rel regclass, function_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_trigger record;
BEGIN
    FOR v_trigger IN
        SELECT tg.tgrelid::regclass AS target, tg.tgname
          FROM pg_trigger tg
         WHERE tg.tgfoid = format('threadline.%I()', function_name)::regprocedure
           AND tg.tgrelid <> rel AND tg.tgrelid NOT IN (SELECT t.relid FROM pg_partition_tree(rel) t)
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_trigger.target);
    END LOOP;
END
$$;

-- Column number -> name of a table, to follow renames later.
CREATE FUNCTION threadline.column_snapshot(rel regclass) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(jsonb_object_agg(a.attnum::text, a.attname), '{}')
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped;
$$;

-- The deployed policy of an audited table, with the key columns in use, for drift
-- checks; null when the table is not audited.
CREATE FUNCTION threadline.table_policy(target regclass) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.policy || jsonb_build_object('primary_key', to_jsonb(t.key_columns))
      FROM threadline.audited_tables t
     WHERE t.relid = threadline.resolve_table(target);
$$;

-- Starts (or updates) the capture of a table with a policy. Keys of the policy:
--   exclude          columns never stored
--   mask             columns stored only as the placeholder
--   mask_placeholder the placeholder, default [REDACTED]
--   ignore_changes   columns whose changes alone are not recorded
--   primary_key      key columns, default the table's primary key
--   changed_from     keep the prior values of changed columns, default true
-- Running it again replaces the policy in the same transaction: no write is missed.
-- Returns the deployed policy.
CREATE FUNCTION threadline.audit_table(target regclass, policy jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_rel regclass := threadline.resolve_table(target);
    v_schema text;
    v_table text;
    v_policy jsonb;
    v_keys text[];
    v_function text;
BEGIN
    SELECT n.nspname, c.relname INTO v_schema, v_table
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = v_rel;
    IF v_schema = 'threadline' THEN
        RAISE EXCEPTION 'threadline: % is a Threadline table and cannot be audited', v_rel USING ERRCODE = '22023',
            HINT = 'Auditing the audit tables would record every capture again, without end.';
    END IF;
    PERFORM threadline.check_layout(v_rel);
    v_policy := threadline.normalize_policy(v_rel, policy);
    v_keys := threadline.key_columns(v_rel, v_policy);
    SELECT t.function_name INTO v_function FROM threadline.audited_tables t WHERE t.relid = v_rel;
    IF v_function IS NULL THEN
        -- at most 55 bytes whatever the name (identifiers are cut at 63), unique by the hash
        v_function := format('capture_%s_%s', left(regexp_replace(lower(v_table), '[^a-z0-9_]', '', 'g'), 30),
                             left(md5(format('%I.%I', v_schema, v_table)), 16));
        INSERT INTO threadline.audited_tables (table_schema, table_name, relid, policy, key_columns, columns, function_name)
        VALUES (v_schema, v_table, v_rel, v_policy, v_keys, threadline.column_snapshot(v_rel), v_function);
    ELSE
        UPDATE threadline.audited_tables
           SET table_schema = v_schema, table_name = v_table, policy = v_policy, key_columns = v_keys,
               columns = threadline.column_snapshot(v_rel), updated_at = now()
         WHERE relid = v_rel;
    END IF;
    PERFORM threadline.generate_capture(v_rel);
    PERFORM threadline.record_schema_event(v_schema, v_table, 'AUDIT TABLE', ARRAY[v_policy::text]);
    RETURN threadline.table_policy(v_rel);
END
$$;

-- Stops the capture of a table. Its audit rows stay.
CREATE FUNCTION threadline.unaudit_table(target regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_rel regclass := threadline.resolve_table(target);
    v_function text;
    v_schema text;
    v_table text;
BEGIN
    DELETE FROM threadline.audited_tables t WHERE t.relid = v_rel
    RETURNING t.function_name, t.table_schema, t.table_name INTO v_function, v_schema, v_table;
    IF v_function IS NULL THEN
        RAISE EXCEPTION 'threadline: % is not audited', v_rel USING ERRCODE = '22023';
    END IF;
    PERFORM threadline.record_schema_event(v_schema, v_table, 'UNAUDIT TABLE', '{}');
    EXECUTE format('DROP FUNCTION threadline.%I() CASCADE', v_function);
END
$$;

