-- Recorder notification outbox (SPEC §7). Rows are written in the transaction that
-- finalizes an order; notification_id is the deterministic key
-- 'order:{order_id}:task:{task_id}:{action}', so writing the same notification twice is a
-- no-op. Publishing columns are filled by the publisher and the relay.
CREATE TABLE recorder_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id TEXT NOT NULL,
    action TEXT NOT NULL CONSTRAINT recorder_outbox_action_valid CHECK (action IN ('clear', 'cancel')),
    device_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    reason TEXT NOT NULL DEFAULT 'order_completed',
    published_at TIMESTAMPTZ NULL,
    publish_attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
-- Deliberately not partial: a notification key is never reused, even after a soft delete.
CREATE UNIQUE INDEX recorder_outbox_notification_id ON recorder_outbox (notification_id);
CREATE INDEX recorder_outbox_unpublished ON recorder_outbox (id)
    WHERE published_at IS NULL AND deleted_at IS NULL;
CREATE TRIGGER recorder_outbox_touch BEFORE UPDATE ON recorder_outbox
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();

-- Idempotency keys of POST /complete-tasks (SPEC §6.1). The row is inserted first thing in
-- the request's transaction, so a concurrent repeat blocks on the unique index until the
-- first request commits (and then replays) or rolls back (and then runs as new). Only
-- successful responses are ever committed here.
CREATE TABLE idempotency_keys (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collector_id BIGINT NOT NULL REFERENCES data_collectors (id),
    idempotency_key TEXT NOT NULL,
    -- Normalized request (batch id and parsed body) used to detect key reuse.
    request_fingerprint TEXT NOT NULL,
    response_status SMALLINT NULL,
    -- Stored as TEXT, not JSONB, so a replay is byte-for-byte the original body.
    response_body TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX idempotency_keys_collector_key ON idempotency_keys (collector_id, idempotency_key);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
CREATE TRIGGER idempotency_keys_touch BEFORE UPDATE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
