-- Route and template traffic per day too (`minute` is the day's first minute, UTC), written
-- with the hours: a week of unclaimed templates reads 7 rows per template, not 168.
CREATE TABLE path_traffic_days (
    context TEXT NOT NULL,
    minute BIGINT NOT NULL,
    path TEXT NOT NULL,
    side TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    PRIMARY KEY (context, minute, path, side)
);
INSERT INTO path_traffic_days (context, minute, path, side, requests, errors, latency_us)
SELECT context, (minute / 1440) * 1440, path, side, SUM(requests), SUM(errors), SUM(latency_us)
FROM path_traffic GROUP BY context, (minute / 1440) * 1440, path, side;
