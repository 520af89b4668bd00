-- Delivered writes stay an hour (to recognise a second shipment); the queries on the writes
-- still waiting must not scan them. The live indexes hold only the waiting ones; the due index
-- they replace held every row.
DROP INDEX shadow_outbox_due;
CREATE INDEX shadow_outbox_live_due ON shadow_outbox (next_at_ms, id)
    WHERE dead = 0 AND delivered_ms IS NULL;
CREATE INDEX shadow_outbox_live_context ON shadow_outbox (context, toward, created_ms)
    WHERE dead = 0 AND delivered_ms IS NULL;
-- A context's figures (waiting and given up on, not delivered).
CREATE INDEX shadow_outbox_context ON shadow_outbox (context, toward, delivered_ms);
