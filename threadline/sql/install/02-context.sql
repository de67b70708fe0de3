---------------------------------------------------------------------------------------
-- Context: validation and the transaction-local settings the capture functions read.
---------------------------------------------------------------------------------------

-- Checks an actor reference and returns it in canonical form.
CREATE FUNCTION threadline.validate_actor(actor jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_type text;
    v_id text;
BEGIN
    IF actor IS NULL OR jsonb_typeof(actor) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(actor) <> 'object' THEN
        RAISE EXCEPTION 'threadline: an actor must be a JSON object, got %', jsonb_typeof(actor)
            USING ERRCODE = '22023', HINT = 'The correct format looks like {"type": "user", "id": "42"}.';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_object_keys(actor) k WHERE k NOT IN ('type', 'id')) THEN
        RAISE EXCEPTION 'threadline: an actor has only the keys "type" and "id", got %', actor
            USING ERRCODE = '22023', HINT = 'The correct format looks like {"type": "user", "id": "42"}.';
    END IF;
    IF jsonb_typeof(actor -> 'type') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'threadline: actor "type" must be a string'
            USING ERRCODE = '22023', HINT = 'One of user, admin, service_account, job, system, anonymous.';
    END IF;
    v_type := actor ->> 'type';
    IF v_type NOT IN ('user', 'admin', 'service_account', 'job', 'system', 'anonymous') THEN
        RAISE EXCEPTION 'threadline: unknown actor type "%"', v_type
            USING ERRCODE = '22023', HINT = 'One of user, admin, service_account, job, system, anonymous.';
    END IF;
    IF v_type = 'anonymous' THEN
        IF actor ? 'id' THEN
            RAISE EXCEPTION 'threadline: an anonymous actor has no id'
                USING ERRCODE = '22023', HINT = 'The correct format looks like {"type": "anonymous"}.';
        END IF;
        RETURN jsonb_build_object('type', 'anonymous');
    END IF;
    IF jsonb_typeof(actor -> 'id') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'threadline: a % actor needs an "id" string', v_type
            USING ERRCODE = '22023', HINT = 'The correct format looks like {"type": "user", "id": "42"}.';
    END IF;
    v_id := actor ->> 'id';
    IF v_id = '' OR octet_length(v_id) > 255 OR v_id ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'threadline: an actor id must be 1 to 255 bytes without control characters'
            USING ERRCODE = '22023';
    END IF;
    RETURN jsonb_build_object('type', v_type, 'id', v_id);
END
$$;

-- Reads an optional free-text value: null when absent, else it must be a string.
CREATE FUNCTION threadline.optional_text(field text, value jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL OR jsonb_typeof(value) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(value) <> 'string' THEN
        RAISE EXCEPTION 'threadline: "%" must be a string, got %', field, jsonb_typeof(value)
            USING ERRCODE = '22023';
    END IF;
    RETURN value #>> '{}';
END
$$;

-- Checks an optional identifier-like text value (request id, correlation id, ...):
-- an optional text of 1 to 256 bytes without control characters.
CREATE FUNCTION threadline.validate_label(field text, value jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v text := threadline.optional_text(field, value);
BEGIN
    IF v = '' OR octet_length(v) > 256 OR v ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'threadline: "%" must be 1 to 256 bytes without control characters', field
            USING ERRCODE = '22023';
    END IF;
    RETURN v;
END
$$;

-- The audit transaction row of the current database transaction, or null when this
-- transaction has not written an audited table yet.
CREATE FUNCTION threadline.current_transaction_id() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cached text := current_setting('threadline.transaction', true);
    v_id bigint;
BEGIN
    IF v_cached IS NULL OR v_cached !~ '^[0-9]+$' THEN
        RETURN NULL;
    END IF;
    SELECT t.id INTO v_id
      FROM threadline.audit_transactions t
     WHERE t.id = v_cached::bigint AND t.xact_id = pg_current_xact_id_if_assigned() AND t.occurred_at >= now();
    RETURN v_id;
END
$$;

-- Finds or creates the audit transaction row of the current transaction. Called by
-- the generated capture functions once per statement, with the clock of the statement
-- (so a transaction occurs when its first change is captured); it runs as their role,
-- with their fixed search_path, and is closed to everyone else.
--
-- The context settings are read and checked once, when the row is created: any session
-- can write them with set_config, so a malformed actor, label or meta refuses the write
-- (with the message begin_audit would give), and an action id is linked only when that action was recorded in this very
-- transaction. A cached row counts only when it belongs to this transaction (same xid,
-- begun after this transaction started: an xid repeats in a restored cluster).
CREATE FUNCTION threadline.transaction_for_capture(at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_cached text := current_setting('threadline.transaction', true);
    v_id bigint;
    v_actor jsonb;
    v_label text;
    v_value text;
    v_meta jsonb;
    v_action text;
BEGIN
    IF v_cached ~ '^[0-9]{1,18}$' THEN
        SELECT t.id INTO v_id
          FROM threadline.audit_transactions t
         WHERE t.id = v_cached::bigint AND t.xact_id = pg_current_xact_id() AND t.occurred_at >= now();
        IF FOUND THEN
            RETURN v_id;
        END IF;
    END IF;
    -- each check runs only for a setting that is there, so a write without a context
    -- pays for none of them; the checks are the ones begin_audit applies
    v_actor := nullif(current_setting('threadline.actor', true), '')::jsonb;
    IF v_actor IS NOT NULL THEN
        v_actor := threadline.validate_actor(v_actor);
    END IF;
    FOREACH v_label IN ARRAY ARRAY['request_id', 'correlation_id', 'tenant_id', 'source'] LOOP
        v_value := nullif(current_setting('threadline.' || v_label, true), '');
        IF v_value IS NOT NULL THEN
            PERFORM threadline.validate_label(v_label, to_jsonb(v_value));
        END IF;
    END LOOP;
    v_meta := nullif(current_setting('threadline.meta', true), '')::jsonb;
    IF v_meta IS NOT NULL AND jsonb_typeof(v_meta) <> 'object' THEN
        RAISE EXCEPTION 'threadline: context "meta" must be a JSON object, got %', jsonb_typeof(v_meta)
            USING ERRCODE = '22023',
                  HINT = 'Attach the context with threadline.begin_audit or threadline.set_actor, which check it, not with set_config.';
    END IF;
    IF v_actor IS NULL AND (SELECT s.require_actor FROM threadline.settings s) THEN
        RAISE EXCEPTION 'threadline: this write has no actor and the database requires one'
            USING ERRCODE = '42501',
                  HINT = 'Write through threadline::transaction, or run SELECT threadline.set_actor(''{"type": "user", "id": "42"}'') first in this transaction.';
    END IF;
    v_action := nullif(current_setting('threadline.action_id', true), '');
    IF v_action IS NOT NULL AND NOT (v_action ~ '^[0-9]{1,18}$' AND EXISTS (
            SELECT 1 FROM threadline.audit_actions a
             WHERE a.id = v_action::bigint AND a.xact_id = pg_current_xact_id() AND a.inserted_at >= now())) THEN
        RAISE EXCEPTION 'threadline: this write names an action that this transaction did not record'
            USING ERRCODE = '22023',
                  HINT = 'Record the action in the same transaction with threadline.begin_audit.';
    END IF;
    INSERT INTO threadline.audit_transactions
        (xact_id, occurred_at, actor, request_id, correlation_id, tenant_id, action_id, source, meta)
    VALUES (
        pg_current_xact_id(),
        at,
        v_actor,
        nullif(current_setting('threadline.request_id', true), ''),
        nullif(current_setting('threadline.correlation_id', true), ''),
        nullif(current_setting('threadline.tenant_id', true), ''),
        v_action::bigint,
        nullif(current_setting('threadline.source', true), ''),
        v_meta
    )
    RETURNING id INTO v_id;
    PERFORM set_config('threadline.transaction', v_id::text, true);
    RETURN v_id;
END
$$;

-- Records an action row on its own and returns its id. Keys: name (required), actor
-- (required), status, verb, category, reason, comment, request_id, correlation_id,
-- job_id, tenant_id.
CREATE FUNCTION threadline.record_action(action jsonb) RETURNS bigint
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

-- Refuses to give changes already captured in this transaction another actor than the
-- one they were captured under: an actor may be named after the first write when there
-- was none, but never replaced or removed (strict mode included).
CREATE FUNCTION threadline.keep_actor(tx bigint, actor jsonb) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_current jsonb := (SELECT t.actor FROM threadline.audit_transactions t WHERE t.id = tx);
BEGIN
    IF v_current IS NOT NULL AND v_current IS DISTINCT FROM actor THEN
        RAISE EXCEPTION 'threadline: this transaction already wrote audited changes as %; it cannot change its actor', v_current
            USING ERRCODE = '55000',
                  HINT = 'Name the actor before the first write, and write as another actor in a transaction of its own.';
    END IF;
END
$$;

-- Attaches a context to the current transaction, for every audited write that
-- follows in it (and the one already captured, if any). Keys: actor, request_id,
-- correlation_id, tenant_id, source, meta, action (an object as record_action takes,
-- without actor, request and correlation ids, which come from the context). Returns
-- the action id, or null without an action. The settings are transaction-local and
-- bound as values, so transaction-mode connection poolers stay safe.
CREATE FUNCTION threadline.begin_audit(context jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_key text;
    v_actor jsonb;
    v_request text;
    v_correlation text;
    v_tenant text;
    v_source text;
    v_meta jsonb;
    v_action_id bigint;
    v_tx bigint;
BEGIN
    IF context IS NULL OR jsonb_typeof(context) <> 'object' THEN
        RAISE EXCEPTION 'threadline: a context must be a JSON object' USING ERRCODE = '22023';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(context) LOOP
        IF v_key NOT IN ('actor', 'request_id', 'correlation_id', 'tenant_id', 'source', 'meta', 'action') THEN
            RAISE EXCEPTION 'threadline: unknown context key "%"', v_key
                USING ERRCODE = '22023',
                      HINT = 'Known keys: actor, request_id, correlation_id, tenant_id, source, meta, action.';
        END IF;
    END LOOP;
    v_actor := threadline.validate_actor(context -> 'actor');
    v_request := threadline.validate_label('request_id', context -> 'request_id');
    v_correlation := threadline.validate_label('correlation_id', context -> 'correlation_id');
    v_tenant := threadline.validate_label('tenant_id', context -> 'tenant_id');
    v_source := threadline.validate_label('source', context -> 'source');
    v_meta := nullif(context -> 'meta', 'null'::jsonb);
    IF v_meta IS NOT NULL AND jsonb_typeof(v_meta) <> 'object' THEN
        RAISE EXCEPTION 'threadline: context "meta" must be a JSON object' USING ERRCODE = '22023';
    END IF;
    IF context -> 'action' IS NOT NULL AND jsonb_typeof(context -> 'action') <> 'null' THEN
        IF jsonb_typeof(context -> 'action') <> 'object' THEN
            RAISE EXCEPTION 'threadline: context "action" must be a JSON object' USING ERRCODE = '22023';
        END IF;
        IF context -> 'action' ?| ARRAY['actor', 'request_id', 'correlation_id', 'tenant_id'] THEN
            RAISE EXCEPTION 'threadline: the action takes its actor, request, correlation and tenant ids from the context'
                USING ERRCODE = '22023';
        END IF;
        v_action_id := threadline.record_action(context -> 'action' || jsonb_strip_nulls(jsonb_build_object(
            'actor', v_actor, 'request_id', v_request, 'correlation_id', v_correlation, 'tenant_id', v_tenant)));
    END IF;
    PERFORM set_config('threadline.actor', coalesce(v_actor::text, ''), true),
            set_config('threadline.request_id', coalesce(v_request, ''), true),
            set_config('threadline.correlation_id', coalesce(v_correlation, ''), true),
            set_config('threadline.tenant_id', coalesce(v_tenant, ''), true),
            set_config('threadline.source', coalesce(v_source, ''), true),
            set_config('threadline.meta', coalesce(v_meta::text, ''), true),
            set_config('threadline.action_id', coalesce(v_action_id::text, ''), true);
    v_tx := threadline.current_transaction_id();
    IF v_tx IS NOT NULL THEN
        PERFORM threadline.keep_actor(v_tx, v_actor);
        UPDATE threadline.audit_transactions
           SET actor = v_actor, request_id = v_request, correlation_id = v_correlation,
               tenant_id = v_tenant, source = v_source, meta = v_meta, action_id = v_action_id
         WHERE id = v_tx;
    END IF;
    RETURN v_action_id;
END
$$;

-- Names the actor of the current transaction, for a manual fix from psql:
--   BEGIN; SELECT threadline.set_actor('{"type": "admin", "id": "7"}'); UPDATE ...; COMMIT;
-- It lasts until the transaction ends.
CREATE FUNCTION threadline.set_actor(actor jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_actor jsonb := threadline.validate_actor(actor);
    v_tx bigint;
BEGIN
    IF v_actor IS NULL THEN
        RAISE EXCEPTION 'threadline: set_actor needs an actor' USING ERRCODE = '22023',
            HINT = 'The correct format looks like SELECT threadline.set_actor(''{"type": "user", "id": "42"}'').';
    END IF;
    PERFORM set_config('threadline.actor', v_actor::text, true);
    IF current_setting('threadline.source', true) IS NULL OR current_setting('threadline.source', true) = '' THEN
        PERFORM set_config('threadline.source', 'console', true);
    END IF;
    v_tx := threadline.current_transaction_id();
    IF v_tx IS NOT NULL THEN
        PERFORM threadline.keep_actor(v_tx, v_actor);
        UPDATE threadline.audit_transactions
           SET actor = v_actor, source = coalesce(source, 'console')
         WHERE id = v_tx;
    END IF;
END
$$;

-- Turns strict mode on or off: with it on, an audited write whose transaction has no
-- actor is refused.
CREATE FUNCTION threadline.require_actor(enabled boolean) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    UPDATE threadline.settings SET require_actor = enabled;
$$;

