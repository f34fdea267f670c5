-- The admin's collectors (SPEC §5.17): an organization, an email and metadata per collector,
-- the three statuses the API speaks, and an index for every filter of the collector list.
ALTER TABLE data_collectors
    ADD COLUMN organization_id BIGINT NULL REFERENCES organizations (id),
    ADD COLUMN email TEXT NULL,
    ADD COLUMN metadata JSONB NULL;

-- Only `active` collectors could ever log in; any other status Keystone stored becomes
-- `inactive`, which keeps them out the same way.
UPDATE data_collectors SET status = 'inactive'
WHERE status NOT IN ('active', 'inactive', 'on_leave');
ALTER TABLE data_collectors ADD CONSTRAINT data_collectors_status_valid
    CHECK (status IN ('active', 'inactive', 'on_leave'));

CREATE INDEX data_collectors_newest ON data_collectors (created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX data_collectors_organization_newest
    ON data_collectors (organization_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX data_collectors_status ON data_collectors (status) WHERE deleted_at IS NULL;
CREATE INDEX data_collectors_name_trgm ON data_collectors USING gin (lower(name) gin_trgm_ops)
    WHERE deleted_at IS NULL;
CREATE INDEX data_collectors_operator_id_trgm
    ON data_collectors USING gin (lower(operator_id) gin_trgm_ops) WHERE deleted_at IS NULL;
