-- The claims left ACCEPTED by the published marks of migration 0004: in
-- flight, so pending. (Data only: CockroachDB runs no schema change after
-- a write in the same transaction.)
INSERT INTO command_pending (operation_id, lease_until)
SELECT c.operation_id, c.lease_until FROM idempotency_claims c
WHERE NOT EXISTS (SELECT 1 FROM command_published p WHERE p.operation_id = c.operation_id)
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.operation_id = c.operation_id)
ON CONFLICT (operation_id) DO NOTHING;
