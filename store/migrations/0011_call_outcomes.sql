-- What each attempt at an upstream call came to (issue 17: a crash is not
-- an upstream failure). An attempt begins with in_flight set; it ends with
-- an observed outcome (an answer recorded, or an observed failure noted,
-- which clears it). An attempt still in flight when the next one begins
-- never ended: its process died, so it is counted as unfinished, not as a
-- failure.
--   failures          observed failures (5xx, 408, 425, 429, timeout,
--                     refused or broken connection): the failure budget
--   first_failure_at  when the first of them was observed: the budget is
--                     also a span of time (IDEMGATE_CALL_RETRY_FOR)
--   unfinished        attempts whose outcome was never observed; while any
--                     exists, no 502 is stored (the upstream may have
--                     applied the command)
--   unfinished_streak unfinished attempts in a row; at the limit
--                     (IDEMGATE_CALL_MAX_UNFINISHED) the command is
--                     quarantined as outcome unknown
--   outcome_unknown_at when it was quarantined; nothing is stored for its
--                     client until `idemgate redrive` calls again
ALTER TABLE call_attempts ADD COLUMN IF NOT EXISTS in_flight BOOL NOT NULL DEFAULT false;
ALTER TABLE call_attempts ADD COLUMN IF NOT EXISTS failures INT NOT NULL DEFAULT 0;
ALTER TABLE call_attempts ADD COLUMN IF NOT EXISTS first_failure_at TIMESTAMPTZ;
ALTER TABLE call_attempts ADD COLUMN IF NOT EXISTS unfinished INT NOT NULL DEFAULT 0;
ALTER TABLE call_attempts ADD COLUMN IF NOT EXISTS unfinished_streak INT NOT NULL DEFAULT 0;
ALTER TABLE call_attempts ADD COLUMN IF NOT EXISTS outcome_unknown_at TIMESTAMPTZ;
-- The quarantined commands, for the gauge, `idemgate list` and the alert:
-- a partial index holds only them.
CREATE INDEX IF NOT EXISTS call_attempts_outcome_unknown ON call_attempts (outcome_unknown_at) WHERE outcome_unknown_at IS NOT NULL;
