-- Batch list totals without counting batches: the list's `total` for a status and
-- organization filter sums a few rows of this tally instead of counting every matching batch
-- (10 000 open batches cost 1–2 ms to count; the answer's page costs less than that).
--
-- Each insert, status move or soft delete of a batch adds signed delta rows (-1 for the batch
-- as it was, +1 as it is); nothing here is ever updated in place, so two transactions never
-- wait for each other on it (one counter row per organization and status would serialize
-- every batch move of an organization, and rows of several statuses taken in different orders
-- could deadlock). The outbox relay folds the deltas into one row per organization and status
-- every minute (keystone_store::batch_lists::fold_batch_tally), so a total reads the folded
-- rows plus the last minute's moves, whatever the number of batches.
CREATE TABLE batch_status_tally (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    delta BIGINT NOT NULL
);
CREATE INDEX batch_status_tally_by_status ON batch_status_tally (status, organization_id)
    INCLUDE (delta);

GRANT SELECT, INSERT, DELETE ON batch_status_tally TO keystone_app;

CREATE FUNCTION keystone_tally_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL THEN
        INSERT INTO batch_status_tally (organization_id, status, delta)
        VALUES (OLD.organization_id, OLD.status, -1);
    END IF;
    IF NEW.deleted_at IS NULL THEN
        INSERT INTO batch_status_tally (organization_id, status, delta)
        VALUES (NEW.organization_id, NEW.status, 1);
    END IF;
    RETURN NULL;
END
$$;

-- Row triggers, so that the counter updates the task triggers make on batches (every
-- completion) skip this at once: only a status, organization or deletion change fires it.
CREATE TRIGGER batches_tallied_on_insert AFTER INSERT ON batches
    FOR EACH ROW EXECUTE FUNCTION keystone_tally_batch();
CREATE TRIGGER batches_tallied_on_update AFTER UPDATE OF status, organization_id, deleted_at
    ON batches FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.organization_id IS DISTINCT FROM NEW.organization_id
          OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION keystone_tally_batch();

CREATE FUNCTION keystone_tally_batches_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO batch_status_tally (organization_id, status, delta)
        SELECT organization_id, status, -count(*) FROM old_rows WHERE deleted_at IS NULL
        GROUP BY organization_id, status;
    ELSE
        DELETE FROM batch_status_tally;
    END IF;
    RETURN NULL;
END
$$;
-- Rows are soft-deleted; a hard delete (an operator's cleanup) or a truncate (tests) keep the
-- tally true too.
CREATE TRIGGER batches_tallied_on_delete AFTER DELETE ON batches
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keystone_tally_batches_deleted();
CREATE TRIGGER batches_tallied_on_truncate AFTER TRUNCATE ON batches
    FOR EACH STATEMENT EXECUTE FUNCTION keystone_tally_batches_deleted();

INSERT INTO batch_status_tally (organization_id, status, delta)
SELECT organization_id, status, count(*) FROM batches WHERE deleted_at IS NULL
GROUP BY organization_id, status;

-- A collector's bindings, current or not: the batch list's collector filter reads them all, so
-- an old binding's batches are found under the collector who produced them.
CREATE INDEX workstations_collector ON workstations (data_collector_id) WHERE deleted_at IS NULL;
