SELECT pg_catalog.set_config('threadline_script.caller_search_path', pg_catalog.current_setting('search_path'), false);
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
-- Reverts the Threadline schema upgrade to version 2: removes retention runs, export jobs,
-- saved views and evidence (with their rows) and transaction_summary().
DROP FUNCTION threadline.prune_evidence(timestamptz, text);
DROP FUNCTION threadline.record_evidence(text, text, text, text, jsonb, jsonb);
DROP TABLE threadline.evidence_maintenance, threadline.evidence_records;
DROP FUNCTION threadline.evidence_is_append_only();
DROP TABLE threadline.saved_views;
DROP TABLE threadline.export_jobs;
DROP FUNCTION threadline.purge_batch(bigint, timestamptz, integer), threadline.purge_plan(timestamptz);
DROP TABLE threadline.retention_runs;
DROP FUNCTION threadline.transaction_summary();
DELETE FROM threadline.schema_version WHERE version = 2;

SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('threadline_script.caller_search_path'), false);
