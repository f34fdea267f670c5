-- The progress counters' function plans its statements once per server session.
--
-- keystone_add_task_counts runs in the trigger of every statement that inserts, moves or
-- deletes tasks (every completion). Its statements take the trigger's arrays as parameters, and
-- PostgreSQL's plan cache kept choosing a plan for each call's own values: the generic plan's
-- estimate for an array parameter looks dearer than a plan for a one-element array, so every
-- call planned again. pg_stat_statements on the bench measured 0.35 ms of planning per call
-- (2026-12-07), about a quarter of PostgreSQL's CPU per completion, for plans that do not
-- change with the values: each statement reaches orders, batches and group counters by
-- primary key, whatever the arrays hold. A generic plan is made once per session and reused.
--
-- The setting is the function's own: it is in force while the function runs and restored when
-- it returns, so nothing in a client session changes (nothing for RDS Proxy to pin).
ALTER FUNCTION keystone_add_task_counts(BIGINT[], BIGINT[], BIGINT[], BIGINT[], TEXT[], BIGINT[])
    SET plan_cache_mode = force_generic_plan;
