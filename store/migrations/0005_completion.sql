-- A claim is completed when its outbox row exists: the projector records
-- a command's response there and never updates the claim row, which the
-- API writes. (Updating the claim was where the projector's transactions
-- and the claims' collided at SERIALIZABLE.) From here on state stays
-- 'ACCEPTED' and completed_at stays NULL on new claims; outbox.created_at
-- is the completion time, command_published the published mark.

-- The sweeper looks for claims past their lease, whatever their state.
CREATE INDEX IF NOT EXISTS idempotency_claims_lease_until ON idempotency_claims (lease_until);
DROP INDEX IF EXISTS idempotency_claims_lease;
