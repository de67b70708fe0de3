-- Reverts the Threadline schema upgrade to version 3: a transaction's changes are
-- indexed by id again.
DROP INDEX threadline.audit_changes_transaction_id_idx;
CREATE INDEX audit_changes_transaction_id_idx ON threadline.audit_changes (transaction_id, id);
DELETE FROM threadline.schema_version WHERE version = 3;
