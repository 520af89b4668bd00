-- Instances that registered themselves, kept alive by heartbeats until they expire.
CREATE TABLE registrations (
    service TEXT NOT NULL,
    url TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (service, url)
);
