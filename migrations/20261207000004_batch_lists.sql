-- The admin console's batch lists (SPEC §5.15): the batch list's order, alone and under the
-- organization filter, and a batch's tasks in creation order.
CREATE INDEX batches_newest ON batches (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX batches_organization_newest ON batches (organization_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX batches_status_newest ON batches (status, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX tasks_batch_created ON tasks (batch_id, created_at, id) WHERE deleted_at IS NULL;
