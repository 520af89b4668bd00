-- The id map: resources the two sides know under different ids (the side that was not the
-- owner gave a mirrored create its own id). Per context and resource, an id on either side names
-- one resource; every replica reads new pairs in `seq` order.
CREATE TABLE id_map (
    seq BIGSERIAL PRIMARY KEY,
    context TEXT NOT NULL,
    resource TEXT NOT NULL,
    legacy_id TEXT NOT NULL,
    new_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX id_map_legacy ON id_map (context, resource, legacy_id);
CREATE UNIQUE INDEX id_map_new ON id_map (context, resource, new_id);
