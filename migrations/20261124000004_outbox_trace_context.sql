-- Tracing from request to device call (SPEC §9 "Operations"): the trace context of the
-- request that queued a notification (an X-Ray trace header, or Keystone's correlation id when
-- there is none) travels with the row, then as the SQS message's AWSTraceHeader and a message
-- attribute, to the consumer's logs and trace.
ALTER TABLE recorder_outbox ADD COLUMN trace_context TEXT NULL;
