-- A few example pairs per mismatch signature, redacted (request headers are never stored).
CREATE TABLE shadow_examples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    context TEXT NOT NULL,
    signature TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    legacy_status BIGINT NOT NULL,
    new_status BIGINT NOT NULL,
    legacy_body TEXT NOT NULL,
    new_body TEXT NOT NULL
);
CREATE INDEX shadow_examples_sig ON shadow_examples (context, signature, id);
