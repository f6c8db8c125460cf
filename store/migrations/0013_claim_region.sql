-- Multi-region (issue 20, docs/MULTI-REGION.md): the region that accepted
-- a claim (its serve wrote the row) and the region that emits its command
-- event to its own Kafka. The claim's INSERT writes both to the accepting
-- region (the accepting process emits at once); the sweeper that re-emits
-- a claim past its lease writes its own region to emitted_region, so a
-- claim adopted by another region after its region was lost shows
-- emitted_region <> accepted_region. NULL on claims made before this
-- migration, or by a process of the release before during a rolling
-- update. Portable: PostgreSQL and CockroachDB both accept it.
ALTER TABLE idempotency_claims ADD COLUMN IF NOT EXISTS accepted_region TEXT;
ALTER TABLE idempotency_claims ADD COLUMN IF NOT EXISTS emitted_region TEXT;
