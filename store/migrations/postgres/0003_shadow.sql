-- Shadow comparison results, rolled up per minute and context (every replica adds its counts).
CREATE TABLE shadow_minutes (
    minute BIGINT NOT NULL,
    context TEXT NOT NULL,
    compared BIGINT NOT NULL,
    matched BIGINT NOT NULL,
    legacy_us BIGINT NOT NULL,
    new_us BIGINT NOT NULL,
    PRIMARY KEY (minute, context)
);
CREATE TABLE shadow_signatures (
    minute BIGINT NOT NULL,
    context TEXT NOT NULL,
    signature TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (minute, context, signature)
);
