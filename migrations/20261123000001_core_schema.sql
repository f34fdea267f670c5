-- Core Keystone schema (SPEC §3). Names follow the existing Keystone schema so data and
-- clients carry over. Statuses are TEXT with CHECK constraints rather than PostgreSQL enums:
-- adding a status is then a constraint swap instead of an ALTER TYPE, and clients never need
-- enum OIDs.

-- Every table keeps updated_at current through this trigger, so no statement can forget it.
CREATE FUNCTION keystone_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- One definition of "this robot type records through Axon": true unless capabilities
-- explicitly say {"requires_axon": false}. NULL capabilities and a missing key count as true.
CREATE FUNCTION keystone_requires_axon(capabilities JSONB) RETURNS BOOLEAN
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE(capabilities -> 'requires_axon', 'true'::jsonb) <> 'false'::jsonb
$$;

CREATE TABLE organizations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX organizations_slug_live ON organizations (slug) WHERE deleted_at IS NULL;

CREATE TABLE scenes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    factory_id BIGINT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);

CREATE TABLE subscenes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scene_id BIGINT NOT NULL REFERENCES scenes (id),
    name TEXT NOT NULL,
    initial_scene_layout TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE INDEX subscenes_scene ON subscenes (scene_id) WHERE deleted_at IS NULL;

CREATE TABLE sops (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '1.0.0',
    description TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX sops_slug_version_live ON sops (slug, version) WHERE deleted_at IS NULL;

CREATE TABLE robot_types (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    model TEXT NULL,
    capabilities JSONB NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);

CREATE TABLE robots (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    robot_type_id BIGINT NOT NULL REFERENCES robot_types (id),
    device_id TEXT NULL,
    factory_id BIGINT NULL,
    metadata JSONB NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX robots_device_id_live ON robots (device_id)
    WHERE deleted_at IS NULL AND device_id IS NOT NULL;

CREATE TABLE data_collectors (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    password_hash TEXT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX data_collectors_operator_id_live ON data_collectors (operator_id)
    WHERE deleted_at IS NULL;

CREATE TABLE workstations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    robot_id BIGINT NULL REFERENCES robots (id),
    data_collector_id BIGINT NULL REFERENCES data_collectors (id),
    organization_id BIGINT NOT NULL REFERENCES organizations (id),
    factory_id BIGINT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'inactive'
        CONSTRAINT workstations_status_valid
        CHECK (status IN ('active', 'inactive', 'break', 'offline')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
-- A collector has at most one live workstation.
CREATE UNIQUE INDEX workstations_collector_live ON workstations (data_collector_id)
    WHERE deleted_at IS NULL AND data_collector_id IS NOT NULL;
CREATE INDEX workstations_robot ON workstations (robot_id) WHERE deleted_at IS NULL;

CREATE TABLE orders (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations (id),
    scene_id BIGINT NULL REFERENCES scenes (id),
    name TEXT NOT NULL,
    target_count INTEGER NOT NULL CONSTRAINT orders_target_count_positive CHECK (target_count > 0),
    priority TEXT NOT NULL DEFAULT 'normal'
        CONSTRAINT orders_priority_valid CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status TEXT NOT NULL DEFAULT 'created'
        CONSTRAINT orders_status_valid
        CHECK (status IN ('created', 'in_progress', 'paused', 'completed', 'cancelled')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE INDEX orders_organization ON orders (organization_id) WHERE deleted_at IS NULL;

CREATE TABLE batches (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id TEXT NOT NULL,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    workstation_id BIGINT NOT NULL REFERENCES workstations (id),
    organization_id BIGINT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL DEFAULT '',
    notes TEXT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CONSTRAINT batches_status_valid
        CHECK (status IN ('pending', 'active', 'completed', 'cancelled', 'recalled')),
    started_at TIMESTAMPTZ NULL,
    ended_at TIMESTAMPTZ NULL,
    metadata JSONB NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX batches_batch_id_live ON batches (batch_id) WHERE deleted_at IS NULL;
-- Open batches of an order (finalization) and active batches of a workstation (status
-- re-derivation).
CREATE INDEX batches_order_status ON batches (order_id, status) WHERE deleted_at IS NULL;
CREATE INDEX batches_workstation_status ON batches (workstation_id, status)
    WHERE deleted_at IS NULL;

CREATE TABLE tasks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id TEXT NOT NULL,
    batch_id BIGINT NOT NULL REFERENCES batches (id),
    order_id BIGINT NOT NULL REFERENCES orders (id),
    sop_id BIGINT NOT NULL REFERENCES sops (id),
    subscene_id BIGINT NOT NULL REFERENCES subscenes (id),
    scene_id BIGINT NULL REFERENCES scenes (id),
    workstation_id BIGINT NULL REFERENCES workstations (id),
    scene_name TEXT NOT NULL DEFAULT '',
    subscene_name TEXT NOT NULL DEFAULT '',
    organization_id BIGINT NULL REFERENCES organizations (id),
    factory_id BIGINT NULL,
    initial_scene_layout TEXT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CONSTRAINT tasks_status_valid CHECK (status IN (
            'pending', 'ready', 'in_progress', 'uploading', 'completed', 'failed', 'cancelled')),
    assigned_at TIMESTAMPTZ NULL,
    started_at TIMESTAMPTZ NULL,
    completed_at TIMESTAMPTZ NULL,
    episode_id BIGINT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX tasks_task_id_live ON tasks (task_id) WHERE deleted_at IS NULL;
-- complete-tasks picks the earliest pending tasks of a group.
CREATE INDEX tasks_pending_by_group ON tasks (batch_id, sop_id, subscene_id, assigned_at, id)
    WHERE deleted_at IS NULL AND status = 'pending';
-- Per-batch and per-order progress figures are counted over these.
CREATE INDEX tasks_batch_status ON tasks (batch_id, status) WHERE deleted_at IS NULL;
CREATE INDEX tasks_order_status ON tasks (order_id, status) WHERE deleted_at IS NULL;

CREATE TRIGGER organizations_touch BEFORE UPDATE ON organizations
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER scenes_touch BEFORE UPDATE ON scenes
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER subscenes_touch BEFORE UPDATE ON subscenes
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER sops_touch BEFORE UPDATE ON sops
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER robot_types_touch BEFORE UPDATE ON robot_types
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER robots_touch BEFORE UPDATE ON robots
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER data_collectors_touch BEFORE UPDATE ON data_collectors
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER workstations_touch BEFORE UPDATE ON workstations
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER batches_touch BEFORE UPDATE ON batches
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
CREATE TRIGGER tasks_touch BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION keystone_touch_updated_at();
