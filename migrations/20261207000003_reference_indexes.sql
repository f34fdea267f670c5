-- The dispatch forms' lists (SPEC §5.16): an index for every station filter and the
-- station list's order, and trigram indexes for the keywords.
CREATE INDEX workstations_newest ON workstations (created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX workstations_status ON workstations (status) WHERE deleted_at IS NULL;
CREATE INDEX workstations_organization ON workstations (organization_id)
    WHERE deleted_at IS NULL;
CREATE INDEX workstations_factory ON workstations (factory_id) WHERE deleted_at IS NULL;
CREATE INDEX workstations_name_trgm ON workstations USING gin (lower(name) gin_trgm_ops)
    WHERE deleted_at IS NULL;
CREATE INDEX robots_robot_type ON robots (robot_type_id) WHERE deleted_at IS NULL;
CREATE INDEX scenes_factory ON scenes (factory_id) WHERE deleted_at IS NULL;
CREATE INDEX sops_slug_trgm ON sops USING gin (lower(slug) gin_trgm_ops) WHERE deleted_at IS NULL;
CREATE INDEX robot_types_name_trgm ON robot_types USING gin (lower(name) gin_trgm_ops)
    WHERE deleted_at IS NULL;
