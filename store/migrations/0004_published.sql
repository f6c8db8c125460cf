-- The commands whose event Kafka acknowledged. Recorded here, by inserts
-- only, rather than by updating the claim row, so that the emitter never
-- conflicts with the projector completing the same claim. A claim is
-- PUBLISHED when it has a row here and is not COMPLETED.
CREATE TABLE IF NOT EXISTS command_published (
    operation_id UUID        NOT NULL PRIMARY KEY,
    published_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The janitor prunes dedup records past the dedup window by age.
CREATE INDEX IF NOT EXISTS processed_events_age ON processed_events (processed_at);
