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

