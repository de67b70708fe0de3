SELECT pg_catalog.set_config('threadline_script.caller_search_path', pg_catalog.current_setting('search_path'), false);
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
-- Threadline schema upgrade to version 2.
--
-- Adds the lifecycle of the trail: retention with its runs log, background export jobs,
-- saved views, and the append-only evidence records; and transaction_summary() for
-- telemetry. Every function
-- created here is revoked from PUBLIC first and granted on purpose (installing version 1
-- revoked only the functions that existed then).

-- What the current database transaction has captured so far: the tables it changed and
-- its number of changes, for telemetry. Only the caller's own transaction is visible.
CREATE FUNCTION threadline.transaction_summary(OUT tables text[], OUT changes bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(DISTINCT format('%s.%s', c.table_schema, c.table_name)), '{}'), count(*)
      FROM threadline.audit_changes c
     WHERE c.transaction_id = threadline.current_transaction_id();
$$;

---------------------------------------------------------------------------------------
-- Retention: every real purge is a run; one runs at a time (an advisory lock held by
-- the purging session), so a row left 'running' belongs to a session that died.
CREATE TABLE threadline.retention_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed', 'abandoned')),
    -- changes captured before it (exclusive) are deleted
    cutoff timestamptz NOT NULL,
    changes_deleted bigint NOT NULL DEFAULT 0,
    transactions_deleted bigint NOT NULL DEFAULT 0,
    batches integer NOT NULL DEFAULT 0,
    -- true when --max-batches stopped it with changes older than the cutoff left
    more_left boolean NOT NULL DEFAULT false,
    error text,
    run_by text NOT NULL DEFAULT session_user
);
CREATE INDEX retention_runs_started_idx ON threadline.retention_runs (started_at);

-- The retention seam: what a purge would delete, and one batch of it. A partitioned store
-- replaces these two functions, not their callers.
CREATE FUNCTION threadline.purge_plan(cutoff timestamptz, OUT changes bigint, OUT transactions bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH doomed AS (
        SELECT c.transaction_id FROM threadline.audit_changes c WHERE c.captured_at < cutoff
    )
    SELECT (SELECT count(*) FROM doomed),
           (SELECT count(*) FROM (SELECT DISTINCT d.transaction_id FROM doomed d) t
             WHERE NOT EXISTS (SELECT 1 FROM threadline.audit_changes c
                                WHERE c.transaction_id = t.transaction_id AND c.captured_at >= cutoff));
$$;

-- Deletes the oldest `batch_size` changes captured before `cutoff`, then the transactions
-- they leave without changes, and adds both counts to run `run_id` in the same
-- transaction, so the runs log never under-counts. Actions are kept: a transaction's
-- action_id goes, the action stays.
CREATE FUNCTION threadline.purge_batch(run_id bigint, cutoff timestamptz, batch_size integer,
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

---------------------------------------------------------------------------------------
-- Background export jobs: the queue. Workers claim a job with FOR UPDATE SKIP LOCKED and
-- hold a lease they renew while writing; a job whose lease ran out is claimed again.
CREATE TABLE threadline.export_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner jsonb NOT NULL CHECK (threadline.validate_actor(owner) IS NOT NULL),
    -- the filter's canonical query string
    filter text NOT NULL CHECK (octet_length(filter) <= 8192),
    format text NOT NULL CHECK (format IN ('csv', 'json', 'ndjson')),
    max_rows bigint CHECK (max_rows > 0),
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'completed', 'failed', 'expired')),
    rows_written bigint NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    submitted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at timestamptz,
    finished_at timestamptz,
    expires_at timestamptz,
    lease_until timestamptz,
    -- the claim of the current attempt: only its holder may renew or finish the job
    lease_token uuid,
    object_name text UNIQUE,
    object_size bigint,
    truncated boolean,
    error text,
    -- the owner's export_requested action, recorded with the submission
    action_id bigint REFERENCES threadline.audit_actions (id) ON DELETE SET NULL
);
CREATE INDEX export_jobs_queue_idx ON threadline.export_jobs (submitted_at, id) WHERE state IN ('queued', 'running');
CREATE INDEX export_jobs_owner_idx ON threadline.export_jobs (owner, submitted_at);
CREATE INDEX export_jobs_expiry_idx ON threadline.export_jobs (expires_at) WHERE state = 'completed';

---------------------------------------------------------------------------------------
-- Saved views: an operator's named filters, as the filter's canonical query string.
CREATE TABLE threadline.saved_views (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner jsonb NOT NULL CHECK (threadline.validate_actor(owner) IS NOT NULL),
    name text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 200 AND name !~ '[[:cntrl:]]'),
    query text NOT NULL CHECK (octet_length(query) <= 8192),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, name)
);

---------------------------------------------------------------------------------------
-- Evidence: claims the host records about the trail (a coverage snapshot, a policy
-- check, a retention run, a delivered export), append-only for every role.
CREATE TABLE threadline.evidence_records (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    subject text NOT NULL CHECK (octet_length(subject) BETWEEN 1 AND 512 AND subject !~ '[[:cntrl:]]'),
    claim text NOT NULL CHECK (octet_length(claim) BETWEEN 1 AND 4096),
    verdict text NOT NULL CHECK (verdict IN ('proven', 'inferred', 'unsupported')),
    payload jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object' AND octet_length(payload::text) <= 1048576),
    recorded_by jsonb NOT NULL,
    -- the database role that called record_evidence: what the caller cannot choose
    recorded_role text NOT NULL DEFAULT session_user,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX evidence_records_subject_idx ON threadline.evidence_records (subject, recorded_at, id);
CREATE INDEX evidence_records_time_idx ON threadline.evidence_records (recorded_at, id);

-- Every removal of evidence, written by prune_evidence before it deletes; append-only too.
CREATE TABLE threadline.evidence_maintenance (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xact_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    performed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    performed_by text NOT NULL DEFAULT session_user,
    before timestamptz NOT NULL,
    reason text NOT NULL CHECK (octet_length(reason) BETWEEN 1 AND 1024),
    records_deleted bigint NOT NULL
);

-- Refuses UPDATE, DELETE and TRUNCATE of evidence, for every role; a DELETE passes only in
-- a transaction that logged it in evidence_maintenance first.
CREATE FUNCTION threadline.evidence_is_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'evidence_records'
       AND EXISTS (SELECT 1 FROM threadline.evidence_maintenance m WHERE m.xact_id = pg_current_xact_id()) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'threadline: threadline.% is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = '42501',
              HINT = 'Remove old evidence with SELECT threadline.prune_evidence(before, reason), which logs the removal.';
END
$$;
-- Statement triggers: they fire even when no row matches, so a refused statement is
-- refused whatever it would touch.
CREATE TRIGGER evidence_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON threadline.evidence_records
    FOR EACH STATEMENT EXECUTE FUNCTION threadline.evidence_is_append_only();
CREATE TRIGGER maintenance_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON threadline.evidence_maintenance
    FOR EACH STATEMENT EXECUTE FUNCTION threadline.evidence_is_append_only();
-- ALWAYS: they fire under session_replication_role = replica too
ALTER TABLE threadline.evidence_records ENABLE ALWAYS TRIGGER evidence_append_only;
ALTER TABLE threadline.evidence_maintenance ENABLE ALWAYS TRIGGER maintenance_append_only;

-- Records one piece of evidence and returns its id. Any role may record; none may change
-- or remove what was recorded.
CREATE FUNCTION threadline.record_evidence(kind text, subject text, claim text, verdict text,
                                           payload jsonb, recorded_by jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_actor jsonb := threadline.validate_actor(recorded_by);
    v_id bigint;
BEGIN
    IF v_actor IS NULL THEN
        RAISE EXCEPTION 'threadline: evidence needs the actor who recorded it' USING ERRCODE = '22023',
            HINT = 'The correct format looks like {"type": "admin", "id": "7"}.';
    END IF;
    INSERT INTO threadline.evidence_records (kind, subject, claim, verdict, payload, recorded_by)
    VALUES (kind, subject, claim, verdict, coalesce(payload, '{}'), v_actor)
    RETURNING id INTO v_id;
    RETURN v_id;
EXCEPTION WHEN check_violation OR not_null_violation THEN
    RAISE EXCEPTION 'threadline: evidence refused: kind must be a lowercase name, subject 1 to 512 bytes without control characters, claim 1 to 4096 bytes, verdict proven, inferred or unsupported, payload a JSON object of at most 1 MiB'
        USING ERRCODE = '22023';
END
$$;

-- The one way to remove evidence: records recorded before `before`, with a reason, logged
-- in evidence_maintenance. Returns how many were removed.
CREATE FUNCTION threadline.prune_evidence(before timestamptz, reason text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_count bigint;
BEGIN
    LOCK TABLE threadline.evidence_records IN SHARE ROW EXCLUSIVE MODE;
    SELECT count(*) INTO v_count FROM threadline.evidence_records e WHERE e.recorded_at < prune_evidence.before;
    INSERT INTO threadline.evidence_maintenance (before, reason, records_deleted)
    VALUES (prune_evidence.before, prune_evidence.reason, v_count);
    DELETE FROM threadline.evidence_records e WHERE e.recorded_at < prune_evidence.before;
    RETURN v_count;
END
$$;

---------------------------------------------------------------------------------------
REVOKE ALL ON threadline.retention_runs, threadline.export_jobs, threadline.saved_views,
              threadline.evidence_records, threadline.evidence_maintenance FROM PUBLIC;
REVOKE ALL ON FUNCTION threadline.transaction_summary(), threadline.purge_plan(timestamptz),
                       threadline.purge_batch(bigint, timestamptz, integer), threadline.evidence_is_append_only(),
                       threadline.record_evidence(text, text, text, text, jsonb, jsonb),
                       threadline.prune_evidence(timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION threadline.transaction_summary(),
                          threadline.record_evidence(text, text, text, text, jsonb, jsonb) TO PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'threadline_reader') THEN
        GRANT SELECT ON threadline.retention_runs, threadline.evidence_records, threadline.evidence_maintenance
           TO threadline_reader;
        -- the operator's own state: export jobs it runs and views it saves
        GRANT SELECT, INSERT, UPDATE ON threadline.export_jobs TO threadline_reader;
        GRANT SELECT, INSERT, UPDATE, DELETE ON threadline.saved_views TO threadline_reader;
        GRANT EXECUTE ON FUNCTION threadline.purge_plan(timestamptz) TO threadline_reader;
    END IF;
END
$$;

INSERT INTO threadline.schema_version (version) VALUES (2);

SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('threadline_script.caller_search_path'), false);
