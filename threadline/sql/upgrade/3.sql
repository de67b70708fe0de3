-- Threadline schema upgrade to version 3.
--
-- A transaction's changes are indexed in capture order, (transaction_id, captured_at,
-- id): a page filtered on transactions (actor, tenant, request, correlation, action) takes
-- each matching transaction's newest changes from the index and stops, instead of reading
-- and sorting every change of a large statement, and an incident bundle reads a
-- transaction in the same order. Rebuilding the index holds writes to audit_changes back
-- while it runs (about a second per million changes on the benchmark machine): upgrade in
-- a quiet moment.
DROP INDEX threadline.audit_changes_transaction_id_idx;
CREATE INDEX audit_changes_transaction_id_idx
    ON threadline.audit_changes (transaction_id, captured_at, id);

-- A row's history is indexed by a 64-bit hash of its table and key, in capture order,
-- instead of by the table's two names and the jsonb key themselves: a third of the size
-- (about 40 bytes a change instead of 115) and a cheaper insert. The key's hash is
-- jsonb's own (jsonb_hash_extended), so keys equal as jsonb hash alike; reads keep the
-- exact table and key predicates beside the hash, so a collision only costs a row read.
-- Rebuilding it holds writes to audit_changes back as the index above does.
DROP INDEX threadline.audit_changes_row_history_idx;
CREATE INDEX audit_changes_row_history_idx ON threadline.audit_changes
    ((hashtextextended(table_schema || '.' || table_name, jsonb_hash_extended(table_pk, 0))), captured_at, id);

-- An action's reason is a label, as the Rust API has always checked it (1 to 256 bytes
-- without control characters): record_action took any text. The rest is unchanged.
CREATE OR REPLACE FUNCTION threadline.record_action(action jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_key text;
    v_name text;
    v_status text;
    v_actor jsonb;
    v_id bigint;
BEGIN
    IF action IS NULL OR jsonb_typeof(action) <> 'object' THEN
        RAISE EXCEPTION 'threadline: an action must be a JSON object' USING ERRCODE = '22023';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(action) LOOP
        IF v_key NOT IN ('name', 'actor', 'status', 'verb', 'category', 'reason', 'comment',
                         'request_id', 'correlation_id', 'job_id', 'tenant_id') THEN
            RAISE EXCEPTION 'threadline: unknown action key "%"', v_key
                USING ERRCODE = '22023',
                      HINT = 'Known keys: name, actor, status, verb, category, reason, comment, request_id, correlation_id, job_id, tenant_id.';
        END IF;
    END LOOP;
    v_name := action ->> 'name';
    IF jsonb_typeof(action -> 'name') IS DISTINCT FROM 'string'
       OR v_name !~ '^[a-z][a-z0-9_.:-]{0,127}$' THEN
        RAISE EXCEPTION 'threadline: an action name must be 1 to 128 characters of a-z, 0-9, "_", ".", ":" or "-", starting with a letter'
            USING ERRCODE = '22023', HINT = 'The correct format looks like "post_created".';
    END IF;
    v_actor := threadline.validate_actor(action -> 'actor');
    IF v_actor IS NULL THEN
        RAISE EXCEPTION 'threadline: action "%" has no actor', v_name
            USING ERRCODE = '22023', HINT = 'Every action names who did it; use {"type": "system", "id": "..."} for the system.';
    END IF;
    v_status := coalesce(threadline.validate_label('status', action -> 'status'), 'ok');
    IF v_status NOT IN ('ok', 'error') THEN
        RAISE EXCEPTION 'threadline: action status must be "ok" or "error", got "%"', v_status
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO threadline.audit_actions
        (name, actor, status, verb, category, reason, comment, request_id, correlation_id, job_id, tenant_id)
    VALUES (
        v_name, v_actor, v_status,
        threadline.validate_label('verb', action -> 'verb'),
        threadline.validate_label('category', action -> 'category'),
        threadline.validate_label('reason', action -> 'reason'),
        threadline.optional_text('comment', action -> 'comment'),
        threadline.validate_label('request_id', action -> 'request_id'),
        threadline.validate_label('correlation_id', action -> 'correlation_id'),
        threadline.validate_label('job_id', action -> 'job_id'),
        threadline.validate_label('tenant_id', action -> 'tenant_id')
    )
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;

---------------------------------------------------------------------------------------
-- Export jobs may write Parquet: a folder of objects by table and day.
ALTER TABLE threadline.export_jobs DROP CONSTRAINT export_jobs_format_check,
    ADD CONSTRAINT export_jobs_format_check CHECK (format IN ('csv', 'json', 'ndjson', 'parquet'));

-- A partitioned store, optional: audit_changes range-partitioned by captured_at, one
-- partition per day, week or month (UTC). partition_changes turns the table into the
-- partitioned one; ensure_partitions creates partitions ahead; a default partition holds a
-- change no partition covers, until ensure_partitions moves it to one. Retention drops
-- whole partitions older than its cutoff (purge_partitions) and deletes in batches only
-- what is left. NULL: the store is one table.
ALTER TABLE threadline.settings ADD COLUMN partition_period text
    CHECK (partition_period IN ('day', 'week', 'month'));
-- how many partitions a retention run dropped whole (their changes are in changes_deleted)
ALTER TABLE threadline.retention_runs ADD COLUMN partitions_dropped integer NOT NULL DEFAULT 0;

-- The start, in UTC, of the day, week (from Monday) or month holding `at`.
CREATE FUNCTION threadline.period_start(period text, at timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF period IS NULL OR period NOT IN ('day', 'week', 'month') THEN
        RAISE EXCEPTION 'threadline: a partition period is day, week or month, got %', coalesce(period, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    RETURN date_trunc(period, at, 'UTC');
END
$$;

-- The partitions of audit_changes with the range each holds (start inclusive, end
-- exclusive; NULL start: from the earliest time), the planner's estimate of its rows, and
-- for the default partition whether it holds any (for health, which its readers may not
-- read directly). Empty when the store is one table.
CREATE FUNCTION threadline.partitions(OUT name text, OUT range_start timestamptz, OUT range_end timestamptz,
                                      OUT is_default boolean, OUT estimated_rows bigint, OUT has_rows boolean)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET datestyle = 'ISO, YMD' AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid, c.relname::text AS relname, b.bound, greatest(c.reltuples, 0)::bigint AS estimate
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         CROSS JOIN LATERAL (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                                 '^FOR VALUES FROM \((MINVALUE|''[^'']*'')\) TO \((MAXVALUE|''[^'']*'')\)$')
                                    AS bound) b
         WHERE i.inhparent = 'threadline.audit_changes'::regclass
    LOOP
        name := r.relname;
        range_start := CASE WHEN r.bound[1] <> 'MINVALUE' THEN btrim(r.bound[1], '''')::timestamptz END;
        range_end := CASE WHEN r.bound[2] <> 'MAXVALUE' THEN btrim(r.bound[2], '''')::timestamptz END;
        is_default := r.bound IS NULL;
        estimated_rows := r.estimate;
        has_rows := NULL;
        IF is_default THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', r.oid::regclass) INTO has_rows;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Gives table threadline.<name>, built with LIKE threadline.audit_changes, each index of
-- audit_changes, named <name>_<what the table's index is named for>, then attaches it as
-- the partition `bound` describes ('FOR VALUES ...' or 'DEFAULT'). Attaching holds writers
-- back less than creating a partition in place does. The partition first passes to the
-- table's owner, so that its indexes are built (their expressions run) as that owner, not
-- as whoever calls this.
CREATE FUNCTION threadline.attach_partition(name text, bound text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_index text;
BEGIN
    EXECUTE format('ALTER TABLE threadline.%I OWNER TO %I', name,
                   (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = 'threadline.audit_changes'::regclass));
    FOR v_index IN
        SELECT regexp_replace(pg_get_indexdef(i.indexrelid),
                              '^CREATE INDEX audit_changes_(\S+) ON ONLY threadline\.audit_changes ',
                              format('CREATE INDEX %s_\1 ON threadline.%s ', name, quote_ident(name)))
          FROM pg_index i WHERE i.indrelid = 'threadline.audit_changes'::regclass
    LOOP
        EXECUTE v_index;
    END LOOP;
    EXECUTE format('ALTER TABLE threadline.audit_changes ATTACH PARTITION threadline.%I %s', name, bound);
END
$$;

-- Creates the partitions of the current period and of the `ahead` periods after it, and
-- of every period a change in the default partition falls in, moving those changes to
-- it. Returns how many it created; periods a partition covers already are skipped.
--
-- Locks: the table first, in SHARE UPDATE EXCLUSIVE mode, which writers and readers pass
-- but which serializes ensure_partitions, purge_partitions and partition_changes, then
-- the default partition, each in the order every other statement takes them. A partition
-- of a period that has begun (the current one, or a past one with strays) needs the
-- table in ACCESS EXCLUSIVE mode: a writer that chose the default partition for a row of
-- that period must wait and choose again, not be refused. Waits end after lock_timeout,
-- so a long reader delays this rather than every writer behind it; the caller retries.
-- It runs as the owner of schema threadline (SECURITY DEFINER, not granted to anyone),
-- so no code of another role's runs with the caller's privileges.
CREATE FUNCTION threadline.ensure_partitions(ahead integer DEFAULT 2) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC'
    SET lock_timeout = '2s' AS $$
DECLARE
    v_period text;
    v_step interval;
    v_now timestamptz;
    v_start timestamptz;
    v_starts timestamptz[];
    v_name text;
    v_created integer := 0;
BEGIN
    SELECT s.partition_period INTO v_period FROM threadline.settings s;
    IF v_period IS NULL THEN
        RAISE EXCEPTION 'threadline: the audit store is not partitioned' USING ERRCODE = '55000',
            HINT = 'Partition it with: threadline partitions convert --period day|week|month.';
    END IF;
    IF ahead IS NULL OR ahead < 0 OR ahead > 400 THEN
        RAISE EXCEPTION 'threadline: partitions are created 0 to 400 periods ahead, got %', coalesce(ahead::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    v_step := ('1 ' || v_period)::interval;
    v_now := threadline.period_start(v_period, now());
    LOCK TABLE threadline.audit_changes IN SHARE UPDATE EXCLUSIVE MODE;
    SELECT coalesce(array_agg(w.s ORDER BY w.s), '{}') INTO v_starts
      FROM (SELECT s FROM generate_series(v_now, v_now + v_step * ahead, v_step) s
            UNION
            SELECT DISTINCT threadline.period_start(v_period, d.captured_at) FROM threadline.audit_changes_default d) w
     WHERE NOT EXISTS (SELECT 1 FROM threadline.partitions() p
                        WHERE NOT p.is_default AND coalesce(p.range_start, '-infinity') <= w.s AND w.s < p.range_end);
    IF cardinality(v_starts) = 0 THEN
        RETURN 0;
    END IF;
    IF v_starts[1] <= now() THEN
        LOCK TABLE threadline.audit_changes IN ACCESS EXCLUSIVE MODE;
    END IF;
    LOCK TABLE threadline.audit_changes_default IN ACCESS EXCLUSIVE MODE;
    FOREACH v_start IN ARRAY v_starts LOOP
        v_name := 'audit_changes_' || to_char(v_start, 'YYYYMMDD');
        -- built beside the table, then attached: attaching holds writers back less than
        -- creating a partition in place does, and its indexes get names of its own
        EXECUTE format('CREATE TABLE threadline.%I (LIKE threadline.audit_changes INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       v_name);
        EXECUTE format('WITH moved AS (DELETE FROM threadline.audit_changes_default d
                                        WHERE d.captured_at >= $1 AND d.captured_at < $2 RETURNING d.*)
                        INSERT INTO threadline.%I SELECT * FROM moved', v_name)
            USING v_start, v_start + v_step;
        PERFORM threadline.attach_partition(v_name,
                                            format('FOR VALUES FROM (%L) TO (%L)', v_start, v_start + v_step));
        v_created := v_created + 1;
    END LOOP;
    RETURN v_created;
END
$$;

-- Makes audit_changes a partitioned table, under a lock that holds writers back for as
-- long as it runs (a moment: it builds nothing and scans nothing it need not). The table
-- as it was becomes the partition of everything before `boundary`, named
-- audit_changes_before_<date>; partitions from `boundary` on are created by
-- ensure_partitions. `boundary` must start a period. Without one, the table must be empty
-- and the boundary is the start of the current period. With one, a validated
-- CHECK (captured_at < boundary) named audit_changes_partition_boundary spares the scan
-- of the old table (threadline partitions convert adds and validates it first, without
-- blocking writers). The identity continues, and the table's grants pass to the new one
-- (column grants, policies, triggers and views stay with the old table). The lock is
-- waited for up to lock_timeout, so that writers do not queue behind a long reader; the
-- caller retries. It runs as the owner of schema threadline, as ensure_partitions does.
-- Returns the name of the partition of the changes captured before.
CREATE FUNCTION threadline.partition_changes(period text, boundary timestamptz DEFAULT NULL) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC'
    SET lock_timeout = '2s' AS $$
DECLARE
    v_before text;
    v_old regclass;
    v_next bigint;
    v_acl aclitem[];
    v_owner oid;
    r record;
BEGIN
    PERFORM threadline.period_start(period, now());
    LOCK TABLE threadline.audit_changes IN ACCESS EXCLUSIVE MODE;
    IF (SELECT s.partition_period FROM threadline.settings s) IS NOT NULL THEN
        RAISE EXCEPTION 'threadline: the audit store is already partitioned by %', (SELECT s.partition_period FROM threadline.settings s)
            USING ERRCODE = '55000';
    END IF;
    IF boundary IS NULL THEN
        IF EXISTS (SELECT 1 FROM threadline.audit_changes) THEN
            RAISE EXCEPTION 'threadline: audit_changes holds changes, so its partitioning needs a boundary in the future'
                USING ERRCODE = '55000', HINT = 'Run threadline partitions convert, which sets one and spares writers the wait.';
        END IF;
        boundary := threadline.period_start(period, now());
    ELSIF boundary <> threadline.period_start(period, boundary) THEN
        RAISE EXCEPTION 'threadline: the boundary % does not start a %', boundary, period USING ERRCODE = '22023';
    END IF;
    v_old := 'threadline.audit_changes'::regclass;
    v_before := 'audit_changes_before_' || to_char(boundary, 'YYYYMMDD');
    EXECUTE format('SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END FROM %s s',
                   pg_get_serial_sequence('threadline.audit_changes', 'id'))
        INTO v_next;
    SELECT c.relacl, c.relowner INTO v_acl, v_owner FROM pg_class c WHERE c.oid = v_old;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = v_old AND k.conname = 'audit_changes_partition_boundary') THEN
        EXECUTE format('ALTER TABLE threadline.audit_changes ADD CONSTRAINT audit_changes_partition_boundary CHECK (captured_at < %L)',
                       boundary);
    END IF;
    EXECUTE format('ALTER TABLE threadline.audit_changes RENAME TO %I', v_before);
    FOR r IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = v_old LOOP
        EXECUTE format('ALTER INDEX threadline.%I RENAME TO %I', r.relname,
                       v_before || substr(r.relname, length('audit_changes') + 1));
    END LOOP;
    EXECUTE format('ALTER TABLE threadline.%I ALTER COLUMN id DROP IDENTITY', v_before);
    -- the columns, their defaults and checks are the old table's, declared once
    EXECUTE format('CREATE TABLE threadline.audit_changes
                        (LIKE threadline.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS)
                        PARTITION BY RANGE (captured_at)', v_before);
    ALTER TABLE threadline.audit_changes DROP CONSTRAINT audit_changes_partition_boundary;
    EXECUTE format('ALTER TABLE threadline.audit_changes ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH %s)',
                   v_next);
    EXECUTE format('ALTER TABLE threadline.audit_changes OWNER TO %I', pg_get_userbyid(v_owner));
    FOR r IN SELECT a.grantee, a.privilege_type, a.is_grantable FROM aclexplode(v_acl) a WHERE a.grantee <> v_owner LOOP
        EXECUTE format('GRANT %s ON threadline.audit_changes TO %s%s', r.privilege_type,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END,
                       CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        EXECUTE format('REVOKE %s ON threadline.%I FROM %s', r.privilege_type, v_before,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END);
    END LOOP;
    -- the read indexes, as on the table: the old table's own are attached, not rebuilt
    CREATE INDEX audit_changes_transaction_id_idx ON threadline.audit_changes (transaction_id, captured_at, id);
    CREATE INDEX audit_changes_row_history_idx ON threadline.audit_changes
        ((hashtextextended(table_schema || '.' || table_name, jsonb_hash_extended(table_pk, 0))), captured_at, id);
    CREATE INDEX audit_changes_timeline_idx ON threadline.audit_changes (captured_at, id);
    CREATE INDEX audit_changes_table_timeline_idx
        ON threadline.audit_changes (table_schema, table_name, captured_at, id);
    EXECUTE format('ALTER TABLE threadline.audit_changes ATTACH PARTITION threadline.%I FOR VALUES FROM (MINVALUE) TO (%L)',
                   v_before, boundary);
    CREATE TABLE threadline.audit_changes_default
        (LIKE threadline.audit_changes INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
    PERFORM threadline.attach_partition('audit_changes_default', 'DEFAULT');
    UPDATE threadline.settings SET partition_period = period;
    PERFORM threadline.ensure_partitions();
    RETURN v_before;
END
$$;

-- The CHECK (captured_at < boundary) that spares partition_changes the scan of a live
-- table, in three steps of their own transactions: 'add' replaces it NOT VALID (a brief
-- ACCESS EXCLUSIVE lock), 'validate' reads the table under SHARE UPDATE EXCLUSIVE, which
-- writers pass, and 'drop' removes it after a failed conversion. Each lock is waited for
-- up to lock_timeout, so that writers do not queue behind a long reader; the caller
-- retries. It runs as the owner of schema threadline, as partition_changes does.
CREATE FUNCTION threadline.partition_boundary(step text, boundary timestamptz DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC'
    SET datestyle = 'ISO, YMD' SET lock_timeout = '2s' AS $$
BEGIN
    IF (SELECT s.partition_period FROM threadline.settings s) IS NOT NULL THEN
        RAISE EXCEPTION 'threadline: the audit store is already partitioned by %', (SELECT s.partition_period FROM threadline.settings s)
            USING ERRCODE = '55000';
    END IF;
    CASE step
        WHEN 'add' THEN
            IF boundary IS NULL THEN
                RAISE EXCEPTION 'threadline: a partition boundary needs a time' USING ERRCODE = '22023';
            END IF;
            EXECUTE format('ALTER TABLE threadline.audit_changes DROP CONSTRAINT IF EXISTS audit_changes_partition_boundary,
                                ADD CONSTRAINT audit_changes_partition_boundary CHECK (captured_at < %L) NOT VALID',
                           boundary);
        WHEN 'validate' THEN
            -- only the CHECK 'add' makes: nothing else of that name is validated as the owner
            IF NOT EXISTS (SELECT 1 FROM pg_constraint k
                            WHERE k.conrelid = 'threadline.audit_changes'::regclass
                              AND k.conname = 'audit_changes_partition_boundary'
                              AND pg_get_constraintdef(k.oid)
                                  ~ '^CHECK \(\(captured_at < ''[0-9: +.-]+''::timestamp with time zone\)\) NOT VALID$') THEN
                RAISE EXCEPTION 'threadline: audit_changes has no partition boundary to validate' USING ERRCODE = '55000';
            END IF;
            ALTER TABLE threadline.audit_changes VALIDATE CONSTRAINT audit_changes_partition_boundary;
        WHEN 'drop' THEN
            ALTER TABLE threadline.audit_changes DROP CONSTRAINT IF EXISTS audit_changes_partition_boundary;
        ELSE
            RAISE EXCEPTION 'threadline: unknown partition boundary step %', step USING ERRCODE = '22023';
    END CASE;
END
$$;

-- Retention on a partitioned store: drops the oldest partition that ends at or before
-- `cutoff`, with the transactions it leaves without changes, and adds the counts to run
-- `run_id` in the same transaction. One partition a call; partitions is 0 when none is
-- left to drop (or the store is one table). The counting and the transactions' deletion
-- come first, under the SHARE UPDATE EXCLUSIVE lock that writers pass (the partition's
-- time is past, so nobody writes into it); only the detach and the drop hold the table
-- in ACCESS EXCLUSIVE mode, waited for up to lock_timeout (the caller retries). It runs
-- as the owner of schema threadline, as ensure_partitions does.
CREATE FUNCTION threadline.purge_partitions(run_id bigint, cutoff timestamptz,
                                            OUT changes bigint, OUT transactions bigint, OUT partitions integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_name text;
    v_start timestamptz;
    v_end timestamptz;
    v_least bigint;
    v_greatest bigint;
BEGIN
    changes := 0;
    transactions := 0;
    partitions := 0;
    LOCK TABLE threadline.audit_changes IN SHARE UPDATE EXCLUSIVE MODE;
    SELECT p.name, p.range_start, p.range_end INTO v_name, v_start, v_end FROM threadline.partitions() p
     WHERE NOT p.is_default AND p.range_end <= cutoff ORDER BY p.range_end LIMIT 1;
    IF v_name IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*), min(c.transaction_id), max(c.transaction_id) FROM threadline.%I c', v_name)
        INTO changes, v_least, v_greatest;
    -- The partition's transactions lie between its least and greatest transaction id;
    -- those with changes outside its range stay. Ids grow with time, so the other
    -- partitions' rows in that range are few: only the speed depends on it.
    DELETE FROM threadline.audit_transactions t
     WHERE t.id BETWEEN v_least AND v_greatest
       AND NOT EXISTS (SELECT 1 FROM threadline.audit_changes c
                        WHERE c.transaction_id BETWEEN v_least AND v_greatest AND c.transaction_id = t.id
                          AND (c.captured_at >= v_end OR c.captured_at < coalesce(v_start, '-infinity')));
    GET DIAGNOSTICS transactions = ROW_COUNT;
    EXECUTE format('ALTER TABLE threadline.audit_changes DETACH PARTITION threadline.%I', v_name);
    EXECUTE format('DROP TABLE threadline.%I', v_name);
    partitions := 1;
    UPDATE threadline.retention_runs r
       SET changes_deleted = r.changes_deleted + purge_partitions.changes,
           transactions_deleted = r.transactions_deleted + purge_partitions.transactions,
           partitions_dropped = r.partitions_dropped + 1
     WHERE r.id = run_id;
END
$$;

-- A batch deletes its changes by (captured_at, id), which every layout indexes: a
-- partitioned store has no index on id alone. The rest is unchanged.
CREATE OR REPLACE FUNCTION threadline.purge_batch(run_id bigint, cutoff timestamptz, batch_size integer,
                                                  OUT changes bigint, OUT transactions bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_transactions bigint[];
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'threadline: a purge batch must hold at least one change, got %', batch_size
            USING ERRCODE = '22023';
    END IF;
    WITH doomed AS (
        SELECT c.captured_at, c.id FROM threadline.audit_changes c
         WHERE c.captured_at < cutoff ORDER BY c.captured_at, c.id LIMIT batch_size
    ), gone AS (
        DELETE FROM threadline.audit_changes c USING doomed d
         WHERE c.captured_at = d.captured_at AND c.id = d.id RETURNING c.transaction_id
    )
    SELECT count(*), coalesce(array_agg(DISTINCT g.transaction_id), '{}') INTO changes, v_transactions FROM gone g;
    DELETE FROM threadline.audit_transactions t
     WHERE t.id = ANY (v_transactions)
       AND NOT EXISTS (SELECT 1 FROM threadline.audit_changes c WHERE c.transaction_id = t.id);
    GET DIAGNOSTICS transactions = ROW_COUNT;
    UPDATE threadline.retention_runs r
       SET changes_deleted = r.changes_deleted + purge_batch.changes,
           transactions_deleted = r.transactions_deleted + purge_batch.transactions,
           batches = r.batches + 1
     WHERE r.id = run_id;
END
$$;

-- The partitioning functions are the owner's: they create and drop tables.
REVOKE ALL ON FUNCTION threadline.period_start(text, timestamptz), threadline.partitions(),
                       threadline.attach_partition(text, text), threadline.ensure_partitions(integer),
                       threadline.partition_changes(text, timestamptz), threadline.partition_boundary(text, timestamptz),
                       threadline.purge_partitions(bigint, timestamptz) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'threadline_reader') THEN
        GRANT EXECUTE ON FUNCTION threadline.partitions() TO threadline_reader;
    END IF;
END
$$;

INSERT INTO threadline.schema_version (version) VALUES (3);
