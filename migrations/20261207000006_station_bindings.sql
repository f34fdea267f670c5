-- Station binding history (SPEC §5.17), as Keystone's own migration 8 keeps it: a rebind or
-- unbind never rewrites the row that batches and tasks point at. The old row stops being
-- current (`is_current` false, `superseded_at`, and `superseded_by` naming the binding that
-- replaced it, null after an unbind); a rebind inserts the new current row. Every existing
-- workstation is current.
ALTER TABLE workstations
    ADD COLUMN is_current BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN superseded_at TIMESTAMPTZ NULL,
    ADD COLUMN superseded_by BIGINT NULL REFERENCES workstations (id),
    ADD COLUMN metadata JSONB NULL,
    ADD CONSTRAINT workstations_binding_history_valid CHECK (
        (is_current AND superseded_at IS NULL AND superseded_by IS NULL)
        OR (NOT is_current AND superseded_at IS NOT NULL)),
    -- A binding is replaced by a newer one: the history is a chain that always ends.
    ADD CONSTRAINT workstations_superseded_by_newer CHECK (superseded_by > id);

-- Each binding is replaced at most once: the history of a station is one chain, walked
-- backwards through this index.
CREATE UNIQUE INDEX workstations_superseded_by ON workstations (superseded_by)
    WHERE superseded_by IS NOT NULL;

-- A collector has at most one current live binding; its old bindings keep pointing at it.
DROP INDEX workstations_collector_live;
CREATE UNIQUE INDEX workstations_collector_current ON workstations (data_collector_id)
    WHERE deleted_at IS NULL AND is_current AND data_collector_id IS NOT NULL;
-- A robot's current binding. Binds refuse a robot that has one (they lock the robot's row
-- first); this is no unique index because Keystone data may hold a robot at two stations,
-- and a migration does not decide which of them stops being current.
CREATE INDEX workstations_robot_current ON workstations (robot_id)
    WHERE deleted_at IS NULL AND is_current;

-- The station list shows current bindings only: its filters' indexes cover just those.
DROP INDEX workstations_newest;
CREATE INDEX workstations_newest ON workstations (created_at DESC, id DESC)
    WHERE deleted_at IS NULL AND is_current;
DROP INDEX workstations_status;
CREATE INDEX workstations_status ON workstations (status) WHERE deleted_at IS NULL AND is_current;
DROP INDEX workstations_organization;
CREATE INDEX workstations_organization ON workstations (organization_id)
    WHERE deleted_at IS NULL AND is_current;
DROP INDEX workstations_factory;
CREATE INDEX workstations_factory ON workstations (factory_id)
    WHERE deleted_at IS NULL AND is_current;
DROP INDEX workstations_name_trgm;
CREATE INDEX workstations_name_trgm ON workstations USING gin (lower(name) gin_trgm_ops)
    WHERE deleted_at IS NULL AND is_current;
