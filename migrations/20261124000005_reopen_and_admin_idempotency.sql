-- Reopen tasks (SPEC §5.10) takes an Idempotency-Key from admins as well as collectors.
-- Admin keys are owned by the admin's operator id (admins have no data_collectors row); the
-- collector index stays as it is, so code that only knows collector keys keeps working.
ALTER TABLE idempotency_keys
    ALTER COLUMN collector_id DROP NOT NULL,
    ADD COLUMN admin_operator_id TEXT NULL,
    ADD CONSTRAINT idempotency_keys_one_owner
        CHECK ((collector_id IS NULL) <> (admin_operator_id IS NULL));
CREATE UNIQUE INDEX idempotency_keys_admin_key ON idempotency_keys (admin_operator_id, idempotency_key)
    WHERE collector_id IS NULL;

-- Reopen picks a group's most recently completed tasks: (completed_at DESC, id DESC).
CREATE INDEX tasks_completed_by_group
    ON tasks (batch_id, sop_id, subscene_id, completed_at DESC NULLS LAST, id DESC)
    WHERE status = 'completed' AND deleted_at IS NULL;
