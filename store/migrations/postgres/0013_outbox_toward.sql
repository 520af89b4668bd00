-- Mirrored writes go both ways: toward the new service while legacy owns a context's writes,
-- toward legacy once the new service owns them.
ALTER TABLE shadow_outbox ADD COLUMN toward TEXT NOT NULL DEFAULT 'new';
