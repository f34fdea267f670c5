-- Progress counters (SPEC §3 derived figures), so no request counts task rows on its way.
--
-- Kept by statement-level triggers on `tasks`, in the same statement (and so the same
-- transaction) as the task rows they count: every write path — the functions, a migration,
-- an operator's manual fix — keeps them exact, and a statement that moves N tasks updates each
-- counter row once, not N times. Request paths already hold the order and batch locks when
-- they write tasks (SPEC §6), so the trigger takes no new lock; for writes outside a request it
-- updates orders before batches, the global lock order.
--
--   orders.task_count / completed_count       live tasks / live completed tasks
--   batches.task_count / completed_count / failed_count / cancelled_count / pending_count
--   task_group_counts                          live tasks per (batch, sop, subscene, status)

ALTER TABLE orders
    ADD COLUMN task_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN completed_count BIGINT NOT NULL DEFAULT 0;

ALTER TABLE batches
    ADD COLUMN task_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN completed_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN failed_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN cancelled_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN pending_count BIGINT NOT NULL DEFAULT 0;

-- A derived cache keyed by what it counts: no id, no soft delete (a group that lost its last
-- task keeps a row with 0), and its rows go with their batch if one is ever hard-deleted.
CREATE TABLE task_group_counts (
    batch_id BIGINT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    sop_id BIGINT NOT NULL,
    subscene_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    task_count BIGINT NOT NULL,
    PRIMARY KEY (batch_id, sop_id, subscene_id, status)
);
GRANT SELECT, INSERT, UPDATE ON task_group_counts TO keystone_app;

-- Adds signed per-(order, batch, group, status) deltas of live tasks to every counter.
-- PL/pgSQL, not SQL: a non-inlined SQL function is planned again on every call, which cost
-- more than the counting itself; PL/pgSQL keeps the plan for the session.
CREATE FUNCTION keystone_add_task_counts(
    order_ids BIGINT[], batch_ids BIGINT[], sop_ids BIGINT[], subscene_ids BIGINT[],
    statuses TEXT[], deltas BIGINT[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS (
        SELECT * FROM unnest(order_ids, batch_ids, sop_ids, subscene_ids, statuses, deltas)
            AS d (order_id, batch_id, sop_id, subscene_id, status, delta)
    ),
    by_order AS (
        SELECT order_id, sum(delta) AS tasks,
               COALESCE(sum(delta) FILTER (WHERE status = 'completed'), 0) AS completed
        FROM d GROUP BY order_id
    ),
    orders_counted AS (
        UPDATE orders o SET task_count = o.task_count + x.tasks,
                            completed_count = o.completed_count + x.completed
        FROM by_order x
        WHERE o.id = x.order_id AND (x.tasks <> 0 OR x.completed <> 0)
        RETURNING o.id
    ),
    by_batch AS (
        SELECT batch_id, sum(delta) AS tasks,
               COALESCE(sum(delta) FILTER (WHERE status = 'completed'), 0) AS completed,
               COALESCE(sum(delta) FILTER (WHERE status = 'failed'), 0) AS failed,
               COALESCE(sum(delta) FILTER (WHERE status = 'cancelled'), 0) AS cancelled,
               COALESCE(sum(delta) FILTER (WHERE status = 'pending'), 0) AS pending
        FROM d GROUP BY batch_id
    ),
    batches_counted AS (
        UPDATE batches b SET task_count = b.task_count + x.tasks,
                             completed_count = b.completed_count + x.completed,
                             failed_count = b.failed_count + x.failed,
                             cancelled_count = b.cancelled_count + x.cancelled,
                             pending_count = b.pending_count + x.pending
        FROM by_batch x
        WHERE b.id = x.batch_id
          -- After the orders: the global lock order, for writers that hold no lock yet.
          AND (SELECT count(*) FROM orders_counted) >= 0
        RETURNING b.id
    )
    INSERT INTO task_group_counts AS g (batch_id, sop_id, subscene_id, status, task_count)
    SELECT batch_id, sop_id, subscene_id, status, sum(delta)
    FROM d WHERE (SELECT count(*) FROM batches_counted) >= 0
    GROUP BY batch_id, sop_id, subscene_id, status
    ORDER BY batch_id, sop_id, subscene_id, status
    ON CONFLICT (batch_id, sop_id, subscene_id, status)
        DO UPDATE SET task_count = g.task_count + excluded.task_count;
END
$$;

-- One trigger function for the three events; each passes the rows it sees as signed deltas
-- (an UPDATE: -1 for the row as it was, +1 as it is; rows that did not change what is
-- counted cancel out and cost nothing more).
CREATE FUNCTION keystone_count_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    order_ids BIGINT[];
    batch_ids BIGINT[];
    sop_ids BIGINT[];
    subscene_ids BIGINT[];
    statuses TEXT[];
    deltas BIGINT[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(order_id), array_agg(batch_id), array_agg(sop_id),
               array_agg(subscene_id), array_agg(status), array_agg(n)
        INTO order_ids, batch_ids, sop_ids, subscene_ids, statuses, deltas
        FROM (SELECT order_id, batch_id, sop_id, subscene_id, status, count(*) AS n
              FROM new_rows WHERE deleted_at IS NULL
              GROUP BY order_id, batch_id, sop_id, subscene_id, status) x;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(order_id), array_agg(batch_id), array_agg(sop_id),
               array_agg(subscene_id), array_agg(status), array_agg(n)
        INTO order_ids, batch_ids, sop_ids, subscene_ids, statuses, deltas
        FROM (SELECT order_id, batch_id, sop_id, subscene_id, status, sum(sign) AS n
              FROM (SELECT order_id, batch_id, sop_id, subscene_id, status, 1 AS sign
                    FROM new_rows WHERE deleted_at IS NULL
                    UNION ALL
                    SELECT order_id, batch_id, sop_id, subscene_id, status, -1
                    FROM old_rows WHERE deleted_at IS NULL) moved
              GROUP BY order_id, batch_id, sop_id, subscene_id, status
              HAVING sum(sign) <> 0) x;
    ELSE
        SELECT array_agg(order_id), array_agg(batch_id), array_agg(sop_id),
               array_agg(subscene_id), array_agg(status), array_agg(-n)
        INTO order_ids, batch_ids, sop_ids, subscene_ids, statuses, deltas
        FROM (SELECT order_id, batch_id, sop_id, subscene_id, status, count(*) AS n
              FROM old_rows WHERE deleted_at IS NULL
              GROUP BY order_id, batch_id, sop_id, subscene_id, status) x;
    END IF;
    IF deltas IS NOT NULL THEN
        PERFORM keystone_add_task_counts(order_ids, batch_ids, sop_ids, subscene_ids,
                                         statuses, deltas);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_counted_on_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keystone_count_tasks();
CREATE TRIGGER tasks_counted_on_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keystone_count_tasks();
CREATE TRIGGER tasks_counted_on_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keystone_count_tasks();

-- The counts as they are now.
UPDATE orders o SET task_count = x.tasks, completed_count = x.completed
FROM (SELECT order_id, count(*) AS tasks, count(*) FILTER (WHERE status = 'completed') AS completed
      FROM tasks WHERE deleted_at IS NULL GROUP BY order_id) x
WHERE o.id = x.order_id;
UPDATE batches b SET task_count = x.tasks, completed_count = x.completed, failed_count = x.failed,
                     cancelled_count = x.cancelled, pending_count = x.pending
FROM (SELECT batch_id, count(*) AS tasks,
             count(*) FILTER (WHERE status = 'completed') AS completed,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
             count(*) FILTER (WHERE status = 'pending') AS pending
      FROM tasks WHERE deleted_at IS NULL GROUP BY batch_id) x
WHERE b.id = x.batch_id;
INSERT INTO task_group_counts (batch_id, sop_id, subscene_id, status, task_count)
SELECT batch_id, sop_id, subscene_id, status, count(*)
FROM tasks WHERE deleted_at IS NULL
GROUP BY batch_id, sop_id, subscene_id, status;

-- Pending tasks that carry an episode are locked against removal (SPEC §5.2); they are rare,
-- so the adjust path finds them here instead of reading the whole group.
CREATE INDEX tasks_pending_with_episode ON tasks (batch_id, sop_id, subscene_id)
    WHERE deleted_at IS NULL AND status = 'pending' AND episode_id IS NOT NULL;

-- Adjust-batch removes a group's newest removable tasks (SPEC §5.2).
CREATE INDEX tasks_removable_by_group
    ON tasks (batch_id, sop_id, subscene_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL AND status = 'pending' AND episode_id IS NULL;
-- Any live task of a group, for the group's denormalized names (views, handoff payload).
CREATE INDEX tasks_by_group ON tasks (batch_id, sop_id, subscene_id) WHERE deleted_at IS NULL;
-- Order figures are counters now: nothing looks tasks up by order any more, and every task
-- status change would keep paying for this index.
DROP INDEX tasks_order_status;
