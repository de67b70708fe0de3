SELECT pg_catalog.set_config('threadline_script.caller_search_path', pg_catalog.current_setting('search_path'), false);
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
-- Removes Threadline: the event triggers, the schema with every audit row, and (through
-- the generated capture functions) the capture triggers on audited tables.
DROP EVENT TRIGGER IF EXISTS threadline_ddl_command_end;
DROP EVENT TRIGGER IF EXISTS threadline_sql_drop;
DROP SCHEMA IF EXISTS threadline CASCADE;

SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('threadline_script.caller_search_path'), false);
