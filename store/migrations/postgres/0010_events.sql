-- The event outbox: what happened (state changes, the autopilot's decisions, breakers), as
-- CloudEvents, written in the same transaction as the change it reports.
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    context TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Each sink's deliveries: pending ones in event order per context, retried with backoff, dead
-- after the horizon.
CREATE TABLE event_deliveries (
    sink TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    context TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at_ms BIGINT NOT NULL,
    last_error TEXT,
    state TEXT NOT NULL,
    PRIMARY KEY (sink, event_id)
);
CREATE INDEX event_deliveries_due ON event_deliveries (sink, state, event_id);
