-- Requests per minute by context (empty: matched no context) and by the side that answered,
-- with answers of 500 and above, the latency sum and a latency histogram (upper bounds in ms:
-- 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, and above). Every replica
-- adds its own counts.
CREATE TABLE traffic_minutes (
    minute BIGINT NOT NULL,
    context TEXT NOT NULL,
    side TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    b0 BIGINT NOT NULL, b1 BIGINT NOT NULL, b2 BIGINT NOT NULL, b3 BIGINT NOT NULL,
    b4 BIGINT NOT NULL, b5 BIGINT NOT NULL, b6 BIGINT NOT NULL, b7 BIGINT NOT NULL,
    b8 BIGINT NOT NULL, b9 BIGINT NOT NULL, b10 BIGINT NOT NULL, b11 BIGINT NOT NULL,
    b12 BIGINT NOT NULL, b13 BIGINT NOT NULL,
    PRIMARY KEY (minute, context, side)
);
