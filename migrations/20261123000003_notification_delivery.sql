-- Publishing and delivery of recorder notifications (SPEC §7).

-- A publisher (the request's inline publish or a relay) leases rows before sending them, so two
-- publishers never send the same row at once, and no row lock is held across the SQS call. A
-- publisher that dies leaves a lease that simply expires.
ALTER TABLE recorder_outbox ADD COLUMN lease_until TIMESTAMPTZ NULL;

-- One row per notification the consumer has seen. A consumer claims it with a short lease
-- before calling the device, so duplicates delivered at once call the device once, and a
-- delivered notification is never sent to the device again.
CREATE TABLE recorder_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    status TEXT NOT NULL
        CONSTRAINT recorder_deliveries_status_valid CHECK (status IN ('in_progress', 'delivered')),
    lease_until TIMESTAMPTZ NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    last_error TEXT NULL,
    response_status SMALLINT NULL,
    delivered_at TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX recorder_deliveries_notification_id ON recorder_deliveries (notification_id);
CREATE TRIGGER recorder_deliveries_touch BEFORE UPDATE ON recorder_deliveries
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
