-- The client's W3C traceparent, kept with the claim so that a re-emitted
-- event carries it too.
ALTER TABLE idempotency_claims ADD COLUMN IF NOT EXISTS traceparent TEXT NOT NULL DEFAULT '';

-- The recovery point of a command applied by a call to another system
-- (an upstream): before each call the projector commits that an attempt
-- started. Redrive, GET /v1/operations and the attempt budget read it.
CREATE TABLE IF NOT EXISTS call_attempts (
    operation_id     UUID        NOT NULL PRIMARY KEY,
    attempts         INT         NOT NULL,
    first_attempt_at TIMESTAMPTZ NOT NULL,
    last_attempt_at  TIMESTAMPTZ NOT NULL,
    last_error       TEXT        NOT NULL DEFAULT ''
);
