-- Reverts the Threadline schema upgrade to version 3: a transaction's changes are
-- indexed by id again, a row's history by its table's names and jsonb key, and the store
-- is one table again (a partitioned one is refused: version 2 knows no partitions), and
-- export jobs are CSV, JSON or NDJSON again (refused while a Parquet job is not expired).
DO $$
BEGIN
    IF (SELECT s.partition_period FROM threadline.settings s) IS NOT NULL THEN
        RAISE EXCEPTION 'threadline: the audit store is partitioned; version 2 cannot read it'
            USING ERRCODE = '55000', HINT = 'Keep version 3, or copy the trail into an unpartitioned install first.';
    END IF;
END
$$;
DO $$
BEGIN
    LOCK TABLE threadline.export_jobs IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM threadline.export_jobs j
                WHERE j.format = 'parquet' AND j.state IN ('queued', 'running', 'completed')) THEN
        RAISE EXCEPTION 'threadline: export jobs in Parquet are queued, running or kept; version 2 cannot run or serve them'
            USING ERRCODE = '55000',
                  HINT = 'Let them finish and expire (threadline export-jobs cleanup), or delete their rows and folders first.';
    END IF;
    -- failed and expired Parquet jobs have no objects left
    DELETE FROM threadline.export_jobs j WHERE j.format = 'parquet';
END
$$;
ALTER TABLE threadline.export_jobs DROP CONSTRAINT export_jobs_format_check,
    ADD CONSTRAINT export_jobs_format_check CHECK (format IN ('csv', 'json', 'ndjson'));
-- a conversion that failed may have left its CHECK: version 2 knows no such thing
ALTER TABLE threadline.audit_changes DROP CONSTRAINT IF EXISTS audit_changes_partition_boundary;
DROP FUNCTION threadline.purge_partitions(bigint, timestamptz), threadline.partition_changes(text, timestamptz),
              threadline.partition_boundary(text, timestamptz),
              threadline.ensure_partitions(integer), threadline.attach_partition(text, text), threadline.partitions(),
              threadline.period_start(text, timestamptz);
ALTER TABLE threadline.retention_runs DROP COLUMN partitions_dropped;
ALTER TABLE threadline.settings DROP COLUMN partition_period;
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
        SELECT c.id FROM threadline.audit_changes c
         WHERE c.captured_at < cutoff ORDER BY c.captured_at, c.id LIMIT batch_size
    ), gone AS (
        DELETE FROM threadline.audit_changes c USING doomed d WHERE c.id = d.id RETURNING c.transaction_id
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
DROP INDEX threadline.audit_changes_transaction_id_idx;
CREATE INDEX audit_changes_transaction_id_idx ON threadline.audit_changes (transaction_id, id);
DROP INDEX threadline.audit_changes_row_history_idx;
CREATE INDEX audit_changes_row_history_idx
    ON threadline.audit_changes (table_schema, table_name, table_pk, captured_at, id);
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
        threadline.optional_text('reason', action -> 'reason'),
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
DELETE FROM threadline.schema_version WHERE version = 3;
