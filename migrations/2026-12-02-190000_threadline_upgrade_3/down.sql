SELECT pg_catalog.set_config('threadline_script.caller_search_path', pg_catalog.current_setting('search_path'), false);
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
-- Reverts the Threadline schema upgrade to version 3: a transaction's changes are
-- indexed by id again, and a row's history by its table's names and jsonb key.
DROP INDEX threadline.audit_changes_transaction_id_idx;
CREATE INDEX audit_changes_transaction_id_idx ON threadline.audit_changes (transaction_id, id);
DROP INDEX threadline.audit_changes_row_history_idx;
CREATE INDEX audit_changes_row_history_idx
    ON threadline.audit_changes (table_schema, table_name, table_pk, captured_at, id);
DELETE FROM threadline.schema_version WHERE version = 3;

SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('threadline_script.caller_search_path'), false);
