-- Leases: one holder at a time per name (the autopilot's evaluator among replicas). A holder
-- renews before `expires_ms`; once it has passed, anyone may take it.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
