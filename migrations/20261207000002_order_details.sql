-- The admin console's orders (SPEC §5.14): a deadline and metadata, names unique per
-- organization among live orders, and indexes for every list filter and the list's order.

ALTER TABLE orders
    ADD COLUMN deadline TIMESTAMPTZ NULL,
    ADD COLUMN metadata JSONB NOT NULL DEFAULT '{}'::jsonb;

-- Live orders of one organization could share a name until now: later ones get their id
-- appended, so the unique index below can hold ("Kitchen run" and "Kitchen run #42").
UPDATE orders o SET name = o.name || ' #' || o.id
FROM (SELECT id, row_number() OVER (PARTITION BY organization_id, name ORDER BY id) AS n
      FROM orders WHERE deleted_at IS NULL) AS named
WHERE o.id = named.id AND named.n > 1;
CREATE UNIQUE INDEX orders_live_name ON orders (organization_id, name) WHERE deleted_at IS NULL;

-- The list's order (newest first, then id), alone and under each equality filter.
CREATE INDEX orders_newest ON orders (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX orders_status_newest ON orders (status, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX orders_priority_newest ON orders (priority, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX orders_scene_newest ON orders (scene_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX orders_organization_newest ON orders (organization_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

-- Keyword search matches anywhere in a name: trigram indexes (pg_trgm is a trusted extension,
-- available on RDS and Aurora, and in Debian's PostgreSQL package).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX orders_name_trgm ON orders USING gin (lower(name) gin_trgm_ops)
    WHERE deleted_at IS NULL;
CREATE INDEX scenes_name_trgm ON scenes USING gin (lower(name) gin_trgm_ops);
CREATE INDEX organizations_name_trgm ON organizations USING gin (lower(name) gin_trgm_ops);
