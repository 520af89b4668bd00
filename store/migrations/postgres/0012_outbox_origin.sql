-- Mirrored writes arrive from each facade's local write-ahead log, at least once: the origin
-- key (unique per write) keeps a write shipped twice once. A delivered write is kept (its
-- bodies emptied) for a while, so that a late second shipment of it is still recognised.
ALTER TABLE shadow_outbox ADD COLUMN origin_key TEXT;
ALTER TABLE shadow_outbox ADD COLUMN delivered_ms BIGINT;
CREATE UNIQUE INDEX shadow_outbox_origin ON shadow_outbox (origin_key);
