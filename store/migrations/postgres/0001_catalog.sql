-- The catalog: one version counter, the entities as JSON documents, an append-only audit log.
CREATE TABLE catalog_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO catalog_meta (id, version) VALUES (1, 0);

CREATE TABLE services (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE contexts (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE routes (id TEXT PRIMARY KEY, context TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX routes_context ON routes (context);

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before TEXT,
    after TEXT,
    reason TEXT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX audit_target ON audit (target, id);

CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
