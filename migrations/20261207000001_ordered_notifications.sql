-- Recorder commands in outbox order whatever SQS does (SPEC §7 "Order end to end").
--
-- settled_at: the command needs nothing more before its device's later commands may go (it
-- was delivered, dead-lettered, superseded, or parked). The publisher sends a device's row
-- only when no earlier row of that device is waiting to be published, and the consumer calls a
-- device only when no earlier command of that device is unsettled; both read the partial index
-- below, which holds only the few commands still in motion.
--
-- publish_seq: when the row's message was last accepted by SQS, as a number: a device's later
-- command waits at the consumer only for earlier commands that went on the queue before it (a
-- redriven command goes on the queue after newer ones, so those do not wait for it).
--
-- publish_generation: how many times a redrive put the command back in line. A redriven
-- command is sent under a new deduplication id (SQS drops a repeat of the old one for five
-- minutes after it was sent).
ALTER TABLE recorder_outbox
    ADD COLUMN settled_at TIMESTAMPTZ NULL,
    ADD COLUMN publish_generation INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN publish_seq BIGINT NULL;
CREATE SEQUENCE recorder_outbox_publish_seq;
GRANT USAGE, SELECT ON SEQUENCE recorder_outbox_publish_seq TO keystone_app;
UPDATE recorder_outbox SET publish_seq = nextval('recorder_outbox_publish_seq')
FROM (SELECT id FROM recorder_outbox WHERE published_at IS NOT NULL ORDER BY id) AS published
WHERE recorder_outbox.id = published.id;

UPDATE recorder_outbox o SET settled_at = COALESCE(d.delivered_at, d.updated_at)
FROM recorder_deliveries d
WHERE d.notification_id = o.notification_id AND d.status IN ('delivered', 'dead_lettered');
UPDATE recorder_outbox SET settled_at = parked_at
WHERE settled_at IS NULL AND parked_at IS NOT NULL AND published_at IS NULL;

CREATE INDEX recorder_outbox_unsettled_by_device ON recorder_outbox (device_id, id)
    WHERE settled_at IS NULL AND deleted_at IS NULL;
-- A redriven 'clear' is superseded when a later command of its device was delivered.
CREATE INDEX recorder_outbox_by_device ON recorder_outbox (device_id, id);
-- GET /orders/{id}/notifications, oldest first.
CREATE INDEX recorder_outbox_by_order ON recorder_outbox (order_id, id);
-- Retention: settled commands, oldest first.
CREATE INDEX recorder_outbox_settled ON recorder_outbox (settled_at)
    WHERE settled_at IS NOT NULL;
-- Retention of delivery records no outbox row explains (messages from elsewhere).
CREATE INDEX recorder_deliveries_updated_at ON recorder_deliveries (updated_at);

-- held_back: not tried, because an earlier command of the device is not settled yet;
-- superseded: a redriven 'clear' overtaken by a later command of the device, never sent.
ALTER TABLE recorder_deliveries DROP CONSTRAINT recorder_deliveries_status_valid;
ALTER TABLE recorder_deliveries ADD CONSTRAINT recorder_deliveries_status_valid
    CHECK (status IN ('in_progress', 'delivered', 'dead_lettered', 'held_back', 'superseded'));

-- Retention removes settled commands and their delivery records after a configurable age
-- (SPEC §7 "Retention").
GRANT DELETE ON recorder_outbox, recorder_deliveries TO keystone_app;
