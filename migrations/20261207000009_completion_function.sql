-- The completion statement of complete-tasks, planned once per server session.
--
-- As a statement sent by the API, PostgreSQL planned it again on every call, named or not
-- (pg_stat_statements on the bench, 2026-12-07: 26 324 plans for 26 262 calls, 0.30 ms each,
-- about a fifth of PostgreSQL's CPU per completion): its generic plan's estimate for
-- `LIMIT p_quantity` is a tenth of the group's pending tasks, which on a group of thousands
-- always looks dearer than a plan for the actual quantity, so the plan cache never kept it.
-- The plan is the same either way (the pending-by-group index in `assigned_at, id` order,
-- stopped at the quantity; the task updates by primary key). Inside a function with its own
-- `plan_cache_mode` the generic plan is made once per session and reused; the setting is
-- restored when the function returns, so no client session changes (nothing for RDS Proxy to
-- pin).
--
-- Completes the p_quantity earliest pending tasks of a group (by assigned_at, then id) when
-- there are that many, and applies the batch and order moves the caller decided under its
-- locks (p_batch_to / p_order_to NULL: no move): one statement, whatever the quantity.
-- Returns the completed tasks in that order, each row also carrying the batch's workstation
-- when the batch moved and the order's new status when it moved; no rows when the group had
-- fewer pending tasks (nothing changed). The caller holds the order and batch locks (SPEC §6
-- lock order: the task rows are locked here, after them).
CREATE FUNCTION keystone_complete_pending_tasks(
    p_batch_id BIGINT, p_sop_id BIGINT, p_subscene_id BIGINT, p_quantity BIGINT,
    p_batch_from TEXT, p_batch_to TEXT, p_order_id BIGINT, p_order_from TEXT, p_order_to TEXT
) RETURNS TABLE (
    id BIGINT, task_id TEXT, completed_at TIMESTAMPTZ, scene_name TEXT, subscene_name TEXT,
    batch_workstation_id BIGINT, order_moved_to TEXT
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT t.id FROM tasks t
        WHERE t.batch_id = p_batch_id AND t.sop_id = p_sop_id AND t.subscene_id = p_subscene_id
          AND t.status = 'pending' AND t.deleted_at IS NULL
        ORDER BY t.assigned_at, t.id LIMIT p_quantity FOR UPDATE),
    enough AS (SELECT count(*) = p_quantity AS ok FROM picked),
    done AS (
        UPDATE tasks t SET status = 'completed',
               started_at = COALESCE(t.started_at, now()), completed_at = now()
        WHERE t.id = ANY (ARRAY (SELECT p.id FROM picked p)) AND (SELECT ok FROM enough)
          AND t.status = 'pending'
        RETURNING t.id, t.task_id, t.completed_at, t.scene_name, t.subscene_name, t.assigned_at),
    batch_moved AS (
        UPDATE batches b SET status = p_batch_to, started_at = COALESCE(b.started_at, now()),
               ended_at = CASE WHEN p_batch_to = 'completed' THEN COALESCE(b.ended_at, now())
                               ELSE b.ended_at END
        WHERE b.id = p_batch_id AND b.status = p_batch_from AND p_batch_to IS NOT NULL
          AND (SELECT ok FROM enough)
        RETURNING b.workstation_id),
    order_moved AS (
        UPDATE orders o SET status = p_order_to
        WHERE o.id = p_order_id AND o.status = p_order_from AND p_order_to IS NOT NULL
          AND (SELECT ok FROM enough)
        RETURNING o.status)
    SELECT d.id, d.task_id, d.completed_at, d.scene_name, d.subscene_name,
           (SELECT m.workstation_id FROM batch_moved m),
           (SELECT m.status FROM order_moved m)
    FROM done d ORDER BY d.assigned_at, d.id;
END
$$;
