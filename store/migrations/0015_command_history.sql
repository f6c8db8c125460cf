-- What happened to a command off its normal path, for the operator
-- console's timeline (issue 22): each re-emission by a sweeper (and the
-- region that made it), each upstream attempt, how it ended (an observed
-- failure with its error, or no outcome because its process died), a
-- quarantine as outcome unknown, and each redrive. None of these is
-- written on a command's normal path (accepted, emitted, applied once), so
-- the hot path writes nothing here; call_attempts stays the recovery point
-- (one row, its counts), this is its log. Deleted with the claim by the
-- janitor. Portable: PostgreSQL and CockroachDB both accept it.
CREATE TABLE IF NOT EXISTS command_history (
    operation_id UUID        NOT NULL,
    at           TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    kind         TEXT        NOT NULL,
    attempt      INT4,
    detail       TEXT        NOT NULL DEFAULT '',
    region       TEXT,
    PRIMARY KEY (operation_id, at, kind)
);
