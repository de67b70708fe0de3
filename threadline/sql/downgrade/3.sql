-- Reverts the Threadline schema upgrade to version 3: a transaction's changes are
-- indexed by id again, and a row's history by its table's names and jsonb key.
DROP INDEX threadline.audit_changes_transaction_id_idx;
CREATE INDEX audit_changes_transaction_id_idx ON threadline.audit_changes (transaction_id, id);
DROP INDEX threadline.audit_changes_row_history_idx;
CREATE INDEX audit_changes_row_history_idx
    ON threadline.audit_changes (table_schema, table_name, table_pk, captured_at, id);
DELETE FROM threadline.schema_version WHERE version = 3;
