-- The published marks and the claims' lease index are replaced by
-- command_pending (migration 0007): one index fewer written per claim.
DROP INDEX IF EXISTS idempotency_claims_lease_until;
DROP TABLE IF EXISTS command_published;
