-- CockroachDB only: row-level TTL deletes completed claims past their
-- retention (the janitor does it on PostgreSQL). A claim not yet completed
-- keeps its key: it expires 30 days later than its retention, as a
-- safety net, and its absence would be flagged by the chaos checks long
-- before that.
ALTER TABLE idempotency_claims SET (
    ttl_expiration_expression = 'CASE WHEN state = ''COMPLETED'' THEN expires_at ELSE expires_at + INTERVAL ''30 days'' END',
    ttl_job_cron = '*/5 * * * *'
);
