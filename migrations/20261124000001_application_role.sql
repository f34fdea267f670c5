-- The least-privilege role the functions connect as (SPEC §9 "Production path"). In AWS the
-- functions reach RDS Proxy with IAM authentication as this role; the master user is for
-- db-migrate only.
--
-- Roles are cluster-wide and this migration runs once per database, possibly in several
-- databases at once (tests): only the run that creates the role sets its attributes.
DO $$
BEGIN
    -- LOGIN without a password: it can only log in with an IAM token (rds_iam), or with a
    -- password an operator sets on purpose.
    CREATE ROLE keystone_app LOGIN;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') THEN
        GRANT rds_iam TO keystone_app;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO keystone_app', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO keystone_app;

-- Rows are soft-deleted with UPDATE: no DELETE anywhere but where purging is the rule.
GRANT SELECT, INSERT, UPDATE ON
    organizations, scenes, subscenes, sops, robot_types, robots, data_collectors,
    workstations, orders, batches, tasks, recorder_outbox, idempotency_keys,
    recorder_deliveries
TO keystone_app;
-- Idempotency keys older than a day are purged by the relay (SPEC §6.1).
GRANT DELETE ON idempotency_keys TO keystone_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO keystone_app;

-- Tables of later migrations: reads and writes, never DELETE or DDL, granted explicitly by
-- the migration that adds them. Sequences of later identity columns follow automatically.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO keystone_app;
