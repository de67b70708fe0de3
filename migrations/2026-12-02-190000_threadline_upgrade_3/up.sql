SELECT pg_catalog.set_config('threadline_script.caller_search_path', pg_catalog.current_setting('search_path'), true);
SET LOCAL search_path = pg_catalog, pg_temp;
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

INSERT INTO threadline.schema_version (version) VALUES (3);

SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('threadline_script.caller_search_path'), true);
