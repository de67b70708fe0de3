-- Threadline schema, version 1.
--
-- Creates the `threadline` schema: the audit tables, the capture machinery that
-- `threadline.audit_table` generates per table, and the functions an application
-- calls to attach its context (actor, request, correlation, tenant, action) to the
-- current database transaction. Run it as the role that owns the audited tables,
-- ideally a superuser so that the schema-change event trigger can be created.

CREATE SCHEMA threadline;
COMMENT ON SCHEMA threadline IS 'Threadline audit trail: captured row changes, their transactions and actions';

-- The role the generated capture functions run as. It may insert audit rows and do
-- nothing else, so even if code that the owner of an audited table can define (a cast,
-- an operator, a domain check) ever ran inside capture, it would gain no privilege but
-- that one. Capture itself never calls such code: values of types outside PostgreSQL's
-- own are rendered by their output functions and compared by their stored bytes.
-- Roles are cluster-wide, so one role serves every database; an existing role is
-- accepted only as a NOLOGIN role without attributes or memberships whose only members
-- are superusers or the installing role.
DO $$
DECLARE
    r record;
    v_role pg_roles;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('threadline_capture', true,
         'threadline: could not create the role threadline_capture; capture runs as the installing role',
         'Install as a superuser or a role with CREATEROLE so that capture runs as a role that can only insert audit rows.',
         'Capture runs as this role; it must be NOLOGIN, without attributes or memberships, and only superusers or the installer may be its members.',
         'Drop it or strip it (ALTER ROLE threadline_capture NOLOGIN NOSUPERUSER ...; REVOKE its memberships), then install again.'),
        -- the read-only role for support staff and the CLI: GRANT threadline_reader TO a login role
        ('threadline_reader', false,
         'threadline: could not create the role threadline_reader',
         'Grant a support role SELECT on the threadline tables and EXECUTE on its read helpers instead.',
         'Members of this role read the whole trail; it must be NOLOGIN, without attributes or memberships.',
         'Drop it or strip it, then install again.')
    ) AS roles(name, members_checked, warning, warning_hint, detail, hint)
    LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r.name);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING '%', r.warning USING HINT = r.warning_hint;
        END;
        SELECT * INTO v_role FROM pg_roles WHERE rolname = r.name;
        IF FOUND AND (v_role.rolcanlogin OR v_role.rolsuper OR v_role.rolcreaterole OR v_role.rolcreatedb
                      OR v_role.rolreplication OR v_role.rolbypassrls
                      OR EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = v_role.oid)
                      -- capture's members could act as it: only superusers and the installer may be
                      OR (r.members_checked
                          AND EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles x ON x.oid = m.member
                                       WHERE m.roleid = v_role.oid AND NOT x.rolsuper AND x.rolname <> current_user))) THEN
            RAISE EXCEPTION 'threadline: the role % exists with privileges it must not have', r.name
                USING ERRCODE = '42501', DETAIL = r.detail, HINT = r.hint;
        END IF;
    END LOOP;
END
$$;

-- Installed schema version, for upgrade migrations.
CREATE TABLE threadline.schema_version (
    version integer PRIMARY KEY,
    installed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO threadline.schema_version (version) VALUES (1);

-- Database-wide switches, one row.
CREATE TABLE threadline.settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- When true, a captured write in a transaction with no actor is refused.
    require_actor boolean NOT NULL DEFAULT false
);
INSERT INTO threadline.settings DEFAULT VALUES;

-- Semantic intent: who did what and why, written by the application.
CREATE TABLE threadline.audit_actions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    actor jsonb NOT NULL,
    status text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'error')),
    verb text,
    category text,
    reason text,
    comment text,
    request_id text,
    correlation_id text,
    job_id text,
    tenant_id text,
    inserted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- the database transaction that recorded it: capture links only an action of its own
    -- transaction to the changes it writes
    xact_id xid8 NOT NULL DEFAULT pg_current_xact_id()
);

-- One row per database transaction that changed an audited table. `id` is the
-- transaction id of the whole API. `xact_id` is PostgreSQL's own transaction id,
-- kept to line audit rows up with server logs; it repeats in a restored cluster, so
-- nothing groups by it: changes point at `id`.
CREATE TABLE threadline.audit_transactions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xact_id xid8 NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor jsonb,
    request_id text,
    correlation_id text,
    tenant_id text,
    action_id bigint REFERENCES threadline.audit_actions (id) ON DELETE SET NULL,
    source text,
    meta jsonb
);

-- One row per changed row. `transaction_id` has no foreign key on purpose: only the
-- capture functions write this table, and a per-row key check would double the cost
-- of a bulk write (see the capture benchmark).
CREATE TABLE threadline.audit_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id bigint NOT NULL,
    -- byte-wise collation: index comparisons stay cheap whatever the database's locale
    table_schema text COLLATE "C" NOT NULL,
    table_name text COLLATE "C" NOT NULL,
    table_pk jsonb NOT NULL,
    op text NOT NULL CHECK (op IN ('insert', 'update', 'delete', 'truncate')),
    data jsonb,
    changed_fields text[],
    changed_from jsonb,
    -- the columns the policy masked (stored as the placeholder) and excluded (not stored)
    -- when this change was captured, sorted; NULL when it masked or excluded nothing.
    -- Typed history decodes from these, not from the policy in force when it reads.
    masked_fields text[],
    excluded_fields text[],
    -- true for the leaving and arriving halves of an update that changed a row's key
    from_update boolean NOT NULL DEFAULT false,
    captured_at timestamptz NOT NULL
);
-- A transaction's changes in capture order (incident bundles):
CREATE INDEX audit_changes_transaction_id_idx ON threadline.audit_changes (transaction_id, id);

-- Read paths. Each index is justified by an EXPLAIN test and priced by the capture
-- benchmark. They are ascending, read backwards for newest-first pages: new entries then
-- land at the right edge, which PostgreSQL inserts into fastest. Row history (and the
-- TRUNCATEs of a table, whose table_pk is {}):
CREATE INDEX audit_changes_row_history_idx
    ON threadline.audit_changes (table_schema, table_name, table_pk, captured_at, id);
-- Timeline pages, newest first, by keyset:
CREATE INDEX audit_changes_timeline_idx ON threadline.audit_changes (captured_at, id);
-- Timeline pages of one table, however rarely it is written:
CREATE INDEX audit_changes_table_timeline_idx
    ON threadline.audit_changes (table_schema, table_name, captured_at, id);
-- Actor history and the actor filter:
CREATE INDEX audit_transactions_actor_idx
    ON threadline.audit_transactions ((actor ->> 'type'), (actor ->> 'id'), occurred_at, id)
    WHERE actor IS NOT NULL;
-- Correlation bundles, request and tenant look-ups:
CREATE INDEX audit_transactions_correlation_idx ON threadline.audit_transactions (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX audit_transactions_request_idx ON threadline.audit_transactions (request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX audit_transactions_tenant_idx ON threadline.audit_transactions (tenant_id, occurred_at, id)
    WHERE tenant_id IS NOT NULL;
-- The action filter (actions by name, then their transactions), and the foreign key:
CREATE INDEX audit_transactions_action_idx ON threadline.audit_transactions (action_id)
    WHERE action_id IS NOT NULL;
CREATE INDEX audit_actions_name_idx ON threadline.audit_actions (name);
CREATE INDEX audit_actions_correlation_idx ON threadline.audit_actions (correlation_id)
    WHERE correlation_id IS NOT NULL;

-- The capture policy deployed for each audited table.
CREATE TABLE threadline.audited_tables (
    table_schema text NOT NULL,
    table_name text NOT NULL,
    -- oid of the table when the policy was last generated; a restore changes it
    relid oid NOT NULL UNIQUE,
    -- normalized policy as given to audit_table (primary_key null when defaulted)
    policy jsonb NOT NULL,
    -- key columns in use, resolved from the policy or the table's primary key
    key_columns text[] NOT NULL,
    -- column number -> name at generation, to follow renames
    columns jsonb NOT NULL,
    function_name text NOT NULL UNIQUE,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_schema, table_name)
);

-- What happened to the shape and the capture of audited tables: every ALTER TABLE and
-- DROP TABLE of one (seen by the event triggers), and every audit_table and
-- unaudit_table. Row values never appear here: only the command and what it named.
CREATE TABLE threadline.schema_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    xact_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    table_schema text COLLATE "C" NOT NULL,
    table_name text COLLATE "C" NOT NULL,
    -- ALTER TABLE, DROP TABLE, AUDIT TABLE, UNAUDIT TABLE
    command text NOT NULL,
    -- the objects the command named (columns, constraints), as PostgreSQL identifies them
    objects text[] NOT NULL DEFAULT '{}',
    -- the role that logged in, and the one it had switched to with SET ROLE (the same
    -- when it had not)
    session_role text NOT NULL DEFAULT session_user,
    acting_role text NOT NULL DEFAULT coalesce(nullif(current_setting('role'), 'none'), session_user)
);
CREATE INDEX schema_events_table_idx ON threadline.schema_events (table_schema, table_name, occurred_at);

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

---------------------------------------------------------------------------------------
-- Privileges: applications write audited tables and call the context functions; the
-- audit tables themselves are closed to them.
---------------------------------------------------------------------------------------

REVOKE ALL ON SCHEMA threadline FROM PUBLIC;
GRANT USAGE ON SCHEMA threadline TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA threadline FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA threadline FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    threadline.begin_audit(jsonb),
    threadline.set_actor(jsonb),
    threadline.record_action(jsonb),
    threadline.current_transaction_id(),
    threadline.validate_actor(jsonb),
    threadline.validate_label(text, jsonb),
    threadline.optional_text(text, jsonb)
TO PUBLIC;

-- The capture role: it finds or creates the transaction row and inserts changes, and
-- nothing more (it reads settings and actions only to check the context).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'threadline_capture') THEN
        GRANT USAGE ON SCHEMA threadline TO threadline_capture;
        GRANT SELECT, INSERT ON threadline.audit_transactions TO threadline_capture;
        GRANT INSERT ON threadline.audit_changes TO threadline_capture;
        GRANT SELECT ON threadline.settings, threadline.audit_actions TO threadline_capture;
        GRANT EXECUTE ON FUNCTION threadline.transaction_for_capture(timestamptz) TO threadline_capture;
    END IF;
END
$$;

-- The reader role: it reads the trail and the policies, and changes nothing.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'threadline_reader') THEN
        GRANT USAGE ON SCHEMA threadline TO threadline_reader;
        GRANT SELECT ON threadline.audit_changes, threadline.audit_transactions, threadline.audit_actions,
                        threadline.audited_tables, threadline.schema_events, threadline.schema_version,
                        threadline.settings
           TO threadline_reader;
        GRANT EXECUTE ON FUNCTION
            threadline.render_key(text, text, jsonb),
            threadline.row_in_partition(text, text, text, jsonb),
            threadline.table_policy(regclass),
            threadline.health_findings(),
            threadline.column_snapshot(regclass),
            threadline.key_index_exists(regclass, text[]),
            threadline.index_compares_as_columns(oid),
            threadline.base_type(oid),
            threadline.key_kind(oid)
        TO threadline_reader;
    END IF;
END
$$;
