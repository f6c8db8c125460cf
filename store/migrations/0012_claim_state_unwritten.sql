-- idempotency_claims.state is dead: a claim's state is derived from the
-- rows that exist for it (store.claimState), and since 0005 every claim
-- was inserted 'ACCEPTED' and never updated. idemgate writes nothing to
-- it from here on, so it may be NULL. It is not dropped yet: during a
-- rolling update the processes of the release before still insert
-- 'ACCEPTED' into it (migrations run before the new processes start),
-- and would fail on a table without it. The next release drops it (and
-- completed_at, NULL on every claim since 0005). NULL passes the
-- column's CHECK.
ALTER TABLE idempotency_claims ALTER COLUMN state DROP NOT NULL;
COMMENT ON COLUMN idempotency_claims.state IS 'unused: claim states are derived (store.claimState); dropped in the next release';
