-- Mismatch counts per route as well as per context (existing counts keep an empty route).
CREATE TABLE shadow_route_signatures (
    minute BIGINT NOT NULL,
    context TEXT NOT NULL,
    route TEXT NOT NULL,
    signature TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (minute, context, route, signature)
);
INSERT INTO shadow_route_signatures (minute, context, route, signature, count)
    SELECT minute, context, '', signature, count FROM shadow_signatures;
DROP TABLE shadow_signatures;
ALTER TABLE shadow_route_signatures RENAME TO shadow_signatures;

-- Why requests of shadowed contexts were not shadowed, per minute (every replica adds).
CREATE TABLE shadow_skips (
    minute BIGINT NOT NULL,
    context TEXT NOT NULL,
    reason TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (minute, context, reason)
);

-- Pairs of legacy answers compared to learn noise, per minute.
ALTER TABLE shadow_minutes ADD COLUMN learned BIGINT NOT NULL DEFAULT 0;

-- JSON paths that differed between two legacy answers to the same request: proposed ignore
-- rules. Accepting one is a catalog change (audited, versioned); dismissing one hides it.
CREATE TABLE shadow_noise (
    context TEXT NOT NULL,
    path TEXT NOT NULL,
    count BIGINT NOT NULL,
    first_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    dismissed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (context, path)
);

-- Writes mirrored to the new service, delivered at least once. Credentials (Authorization,
-- Cookie, Proxy-Authorization) are never stored.
CREATE TABLE shadow_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    context TEXT NOT NULL,
    route TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    method TEXT NOT NULL,
    uri TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    legacy_status BIGINT NOT NULL,
    legacy_headers TEXT NOT NULL,
    legacy_body BLOB,
    legacy_us BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at_ms BIGINT NOT NULL,
    last_error TEXT,
    dead BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX shadow_outbox_due ON shadow_outbox (dead, next_at_ms);
