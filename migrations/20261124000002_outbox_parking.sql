-- Parking (SPEC §7): a row SQS refuses again and again must not hold back newer rows. The
-- publisher counts refusals of the message itself (not outages: those are nobody's fault and
-- end by themselves) and parks the row after too many; parked rows are out of the relay's line
-- until an operator puts them back (SPEC §5.9).
ALTER TABLE recorder_outbox
    ADD COLUMN publish_rejections INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN parked_at TIMESTAMPTZ NULL;

DROP INDEX recorder_outbox_unpublished;
CREATE INDEX recorder_outbox_unpublished ON recorder_outbox (id)
    WHERE published_at IS NULL AND parked_at IS NULL AND deleted_at IS NULL;
CREATE INDEX recorder_outbox_parked ON recorder_outbox (id)
    WHERE parked_at IS NOT NULL AND published_at IS NULL AND deleted_at IS NULL;
