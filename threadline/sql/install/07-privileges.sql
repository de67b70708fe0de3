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
