-- Removes Threadline: the event triggers, the schema with every audit row, and (through
-- the generated capture functions) the capture triggers on audited tables.
DROP EVENT TRIGGER IF EXISTS threadline_ddl_command_end;
DROP EVENT TRIGGER IF EXISTS threadline_sql_drop;
DROP SCHEMA IF EXISTS threadline CASCADE;
