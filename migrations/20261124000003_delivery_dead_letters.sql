-- Delivery records say when a notification's last allowed delivery failed (SPEC §7): the
-- consumer marks it 'dead_lettered' on the receive SQS counts as the last before the DLQ. A
-- redriven message claims the record again like any other undelivered one.
ALTER TABLE recorder_deliveries DROP CONSTRAINT recorder_deliveries_status_valid;
ALTER TABLE recorder_deliveries ADD CONSTRAINT recorder_deliveries_status_valid
    CHECK (status IN ('in_progress', 'delivered', 'dead_lettered'));
