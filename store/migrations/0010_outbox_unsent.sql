-- The relay reads the responses not yet published, oldest first. A partial
-- index holds only those: a row leaves it when the relay marks it sent,
-- instead of gaining a second entry there; the relay's scan walks the
-- unsent rows, not every row the index ever held.
CREATE INDEX IF NOT EXISTS outbox_unsent_created ON outbox (created_at) WHERE sent_at IS NULL;
DROP INDEX IF EXISTS outbox_unsent;
