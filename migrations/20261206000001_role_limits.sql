-- The SPEC §6 wait limits become the application role's defaults in this database, instead of
-- being sent by every transaction: a `SET`/`set_config` from the client makes RDS Proxy pin the
-- session to one server connection, while a role default is in force from the first statement
-- of every server session the proxy (or PgBouncer, or a direct pool) opens as keystone_app.
--
-- `db-migrate` calls the function below after every run with its configured limits
-- (DB_LOCK_TIMEOUT_MS, DB_STATEMENT_TIMEOUT_MS, DB_IDLE_IN_TRANSACTION_TIMEOUT_MS); the values
-- here are the defaults for a database migrated without it. Settings are per database
-- (`IN DATABASE`), so databases sharing a cluster (the tests') never overwrite each other.
CREATE FUNCTION keystone_set_role_limits(
    role_name NAME,
    lock_timeout_ms INTEGER,
    statement_timeout_ms INTEGER,
    idle_in_transaction_timeout_ms INTEGER
) RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
    IF lock_timeout_ms < 0 OR statement_timeout_ms < 0 OR idle_in_transaction_timeout_ms < 0 THEN
        RAISE EXCEPTION 'limits are milliseconds >= 0 (0 disables one)';
    END IF;
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET lock_timeout = %L',
        role_name, current_database(), lock_timeout_ms || 'ms');
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L',
        role_name, current_database(), statement_timeout_ms || 'ms');
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET idle_in_transaction_session_timeout = %L',
        role_name, current_database(), idle_in_transaction_timeout_ms || 'ms');
END
$$;

-- Only the migrating user may call it (it could not alter the role anyway).
REVOKE ALL ON FUNCTION keystone_set_role_limits(NAME, INTEGER, INTEGER, INTEGER) FROM PUBLIC;

SELECT keystone_set_role_limits('keystone_app', 4000, 8000, 10000);
