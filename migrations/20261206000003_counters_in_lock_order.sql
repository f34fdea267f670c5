-- The progress counters keep the global lock order (SPEC §6: order → batches → tasks).
--
-- The counter triggers on `tasks` run after the statement has locked its task rows, so a
-- counter that waited for an order or batch lock there would take tasks → order → batch: a
-- writer outside the API (a device-side process moving tasks through ready / in_progress /
-- uploading, an operator's fix) deadlocked with complete/cancel/finalize, which lock the order
-- first. Now the trigger never waits for an order or batch row: it takes them only when this
-- transaction holds them already (every API writer does) or nobody does, and otherwise refuses
-- the statement at once (55P03, nothing applied) — retrying, or moving tasks with
-- keystone_move_tasks(), which locks in the global order, is the remedy.
--
-- Also brings any earlier form of 20261124000006 to its released form: counters in PL/pgSQL,
-- group counters deleted with their batch, no tasks_order_status index.

CREATE OR REPLACE FUNCTION keystone_add_task_counts(
    order_ids BIGINT[], batch_ids BIGINT[], sop_ids BIGINT[], subscene_ids BIGINT[],
    statuses TEXT[], deltas BIGINT[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    wanted BIGINT;
    granted BIGINT;
BEGIN
    -- Orders, then batches, each in ascending id, never waiting.
    SELECT count(DISTINCT id) INTO wanted FROM unnest(order_ids) AS id;
    SELECT count(*) INTO granted FROM (
        SELECT id FROM orders WHERE id = ANY (order_ids)
        ORDER BY id FOR NO KEY UPDATE SKIP LOCKED) o;
    IF granted < wanted THEN
        RAISE EXCEPTION 'the order of these tasks is locked by another transaction'
            USING ERRCODE = 'lock_not_available',
                  HINT = 'retry, or move task statuses with keystone_move_tasks(), which waits '
                         'for the order and batch locks first (the global lock order)';
    END IF;
    SELECT count(DISTINCT id) INTO wanted FROM unnest(batch_ids) AS id;
    SELECT count(*) INTO granted FROM (
        SELECT id FROM batches WHERE id = ANY (batch_ids)
        ORDER BY id FOR NO KEY UPDATE SKIP LOCKED) b;
    IF granted < wanted THEN
        RAISE EXCEPTION 'the batch of these tasks is locked by another transaction'
            USING ERRCODE = 'lock_not_available',
                  HINT = 'retry, or move task statuses with keystone_move_tasks(), which waits '
                         'for the order and batch locks first (the global lock order)';
    END IF;

    WITH d AS (
        SELECT * FROM unnest(order_ids, batch_ids, sop_ids, subscene_ids, statuses, deltas)
            AS d (order_id, batch_id, sop_id, subscene_id, status, delta)
    ),
    by_order AS (
        SELECT order_id, sum(delta) AS tasks,
               COALESCE(sum(delta) FILTER (WHERE status = 'completed'), 0) AS completed
        FROM d GROUP BY order_id
    )
    UPDATE orders o SET task_count = o.task_count + x.tasks,
                        completed_count = o.completed_count + x.completed
    FROM by_order x
    WHERE o.id = x.order_id AND (x.tasks <> 0 OR x.completed <> 0);

    WITH d AS (
        SELECT * FROM unnest(batch_ids, statuses, deltas) AS d (batch_id, status, delta)
    ),
    by_batch AS (
        SELECT batch_id, sum(delta) AS tasks,
               COALESCE(sum(delta) FILTER (WHERE status = 'completed'), 0) AS completed,
               COALESCE(sum(delta) FILTER (WHERE status = 'failed'), 0) AS failed,
               COALESCE(sum(delta) FILTER (WHERE status = 'cancelled'), 0) AS cancelled,
               COALESCE(sum(delta) FILTER (WHERE status = 'pending'), 0) AS pending
        FROM d GROUP BY batch_id
    )
    UPDATE batches b SET task_count = b.task_count + x.tasks,
                         completed_count = b.completed_count + x.completed,
                         failed_count = b.failed_count + x.failed,
                         cancelled_count = b.cancelled_count + x.cancelled,
                         pending_count = b.pending_count + x.pending
    FROM by_batch x
    WHERE b.id = x.batch_id
      -- A move between statuses no batch counter names (ready → in_progress) writes nothing.
      AND (x.tasks <> 0 OR x.completed <> 0 OR x.failed <> 0 OR x.cancelled <> 0
           OR x.pending <> 0);

    -- Group counters after their batch: a writer reaches them only through its batch lock.
    INSERT INTO task_group_counts AS g (batch_id, sop_id, subscene_id, status, task_count)
    SELECT batch_id, sop_id, subscene_id, status, sum(delta)
    FROM unnest(batch_ids, sop_ids, subscene_ids, statuses, deltas)
        AS d (batch_id, sop_id, subscene_id, status, delta)
    GROUP BY batch_id, sop_id, subscene_id, status
    HAVING sum(delta) <> 0
    ORDER BY batch_id, sop_id, subscene_id, status
    ON CONFLICT (batch_id, sop_id, subscene_id, status)
        DO UPDATE SET task_count = g.task_count + excluded.task_count;
END
$$;

-- TRUNCATE fires no row or statement trigger that sees rows: after one, no task is left, so
-- every counter is zero.
CREATE FUNCTION keystone_zero_task_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE orders SET task_count = 0, completed_count = 0
    WHERE task_count <> 0 OR completed_count <> 0;
    UPDATE batches SET task_count = 0, completed_count = 0, failed_count = 0,
                       cancelled_count = 0, pending_count = 0
    WHERE task_count <> 0 OR completed_count <> 0 OR failed_count <> 0
       OR cancelled_count <> 0 OR pending_count <> 0;
    DELETE FROM task_group_counts;
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_counted_on_truncate AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION keystone_zero_task_counts();

-- How a process outside the API moves task statuses without ever deadlocking with it: the
-- orders, then the batches, then the tasks, each in ascending id, waiting as the API does.
-- Returns how many tasks changed status.
CREATE FUNCTION keystone_move_tasks(task_ids BIGINT[], new_status TEXT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    moved BIGINT;
BEGIN
    PERFORM 1 FROM orders
    WHERE id IN (SELECT order_id FROM tasks WHERE id = ANY (task_ids))
    ORDER BY id FOR NO KEY UPDATE;
    PERFORM 1 FROM batches
    WHERE id IN (SELECT batch_id FROM tasks WHERE id = ANY (task_ids))
    ORDER BY id FOR NO KEY UPDATE;
    PERFORM 1 FROM tasks WHERE id = ANY (task_ids) ORDER BY id FOR UPDATE;
    UPDATE tasks SET status = new_status, updated_at = now(),
                     started_at = CASE WHEN new_status = 'in_progress'
                                       THEN COALESCE(started_at, now()) ELSE started_at END,
                     completed_at = CASE WHEN new_status = 'completed'
                                         THEN COALESCE(completed_at, now()) ELSE completed_at END
    WHERE id = ANY (task_ids) AND deleted_at IS NULL AND status <> new_status;
    GET DIAGNOSTICS moved = ROW_COUNT;
    RETURN moved;
END
$$;

-- Earlier forms of 20261124000006 (each statement does nothing on the released form).
DROP INDEX IF EXISTS tasks_order_status;
ALTER TABLE task_group_counts
    DROP CONSTRAINT task_group_counts_batch_id_fkey,
    ADD CONSTRAINT task_group_counts_batch_id_fkey
        FOREIGN KEY (batch_id) REFERENCES batches (id) ON DELETE CASCADE;
