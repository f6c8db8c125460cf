-- CockroachDB only: with completion recorded in the outbox (0005), the
-- row-level TTL can no longer tell a completed claim from a pending one.
-- It becomes a safety net 30 days past every claim's retention; the
-- janitor, which runs on every flavor, deletes completed claims on time.
ALTER TABLE idempotency_claims SET (
    ttl_expiration_expression = 'expires_at + INTERVAL ''30 days'''
);
