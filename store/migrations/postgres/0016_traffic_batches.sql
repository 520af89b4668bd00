-- Traffic counts a replica hands in with one row per flush, waiting for the one merge that
-- adds everything handed in to the rollups: the rollups are then written once for the whole
-- fleet rather than once per replica, so their writes do not grow with the number of
-- replicas. `kind` is `traffic` (per context, side and minute) or `paths` (per route, side
-- and hour); `pairs` is how many rows `body` (versioned JSON) holds.
CREATE TABLE traffic_batches (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    pairs BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX traffic_batches_kind ON traffic_batches (kind, id);
-- One row: when the last merge ran and when one last took route counts. A merge sets
-- `merged_ms` only if it still holds the value it read, so one replica merges at a time.
CREATE TABLE traffic_merges (
    id INTEGER PRIMARY KEY,
    merged_ms BIGINT NOT NULL,
    routes_merged_ms BIGINT NOT NULL
);
INSERT INTO traffic_merges (id, merged_ms, routes_merged_ms) VALUES (1, 0, 0);
