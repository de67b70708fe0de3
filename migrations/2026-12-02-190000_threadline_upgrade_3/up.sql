SELECT pg_catalog.set_config('threadline_script.caller_search_path', pg_catalog.current_setting('search_path'), false);
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
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

INSERT INTO threadline.schema_version (version) VALUES (3);

SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('threadline_script.caller_search_path'), false);
