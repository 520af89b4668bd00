-- Answers the new side failed and legacy gave instead, per minute.
ALTER TABLE traffic_minutes ADD COLUMN fallbacks BIGINT NOT NULL DEFAULT 0;

-- The same counts per hour (`minute` is the hour's first minute), written with the minutes:
-- windows of a day or a week read 24 or 168 rows per context, not 1,440 or 10,080.
CREATE TABLE traffic_hours (
    minute BIGINT NOT NULL,
    context TEXT NOT NULL,
    side TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    fallbacks BIGINT NOT NULL DEFAULT 0,
    b0 BIGINT NOT NULL, b1 BIGINT NOT NULL, b2 BIGINT NOT NULL, b3 BIGINT NOT NULL,
    b4 BIGINT NOT NULL, b5 BIGINT NOT NULL, b6 BIGINT NOT NULL, b7 BIGINT NOT NULL,
    b8 BIGINT NOT NULL, b9 BIGINT NOT NULL, b10 BIGINT NOT NULL, b11 BIGINT NOT NULL,
    b12 BIGINT NOT NULL, b13 BIGINT NOT NULL,
    PRIMARY KEY (minute, context, side)
);
INSERT INTO traffic_hours (minute, context, side, requests, errors, latency_us, fallbacks,
    b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13)
SELECT (minute / 60) * 60, context, side, SUM(requests), SUM(errors), SUM(latency_us), 0,
    SUM(b0), SUM(b1), SUM(b2), SUM(b3), SUM(b4), SUM(b5), SUM(b6), SUM(b7), SUM(b8), SUM(b9),
    SUM(b10), SUM(b11), SUM(b12), SUM(b13)
FROM traffic_minutes GROUP BY (minute / 60) * 60, context, side;

-- A context's page reads its own rows over a day: index by context first.
CREATE INDEX traffic_minutes_context ON traffic_minutes (context, minute);
CREATE INDEX traffic_hours_context ON traffic_hours (context, minute);
CREATE INDEX shadow_minutes_context ON shadow_minutes (context, minute);
CREATE INDEX shadow_signatures_context ON shadow_signatures (context, minute);
CREATE INDEX shadow_skips_context ON shadow_skips (context, minute);

-- Requests per hour by route (`context` and the route's id as `path`) and, for requests no
-- context claimed (`context` empty), by method and path template (`GET /orders/{id}`).
CREATE TABLE path_traffic (
    context TEXT NOT NULL,
    minute BIGINT NOT NULL,
    path TEXT NOT NULL,
    side TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    PRIMARY KEY (context, minute, path, side)
);

-- When each route or template was last answered by each side (kept when the hours are
-- pruned: a retired route's quiet period can be longer than the history).
CREATE TABLE path_last_seen (
    context TEXT NOT NULL,
    path TEXT NOT NULL,
    side TEXT NOT NULL,
    minute BIGINT NOT NULL,
    PRIMARY KEY (context, path, side)
);
