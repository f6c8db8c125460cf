package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
)

// CallBudget bounds the attempts at an upstream call. Only an observed
// failure (a 5xx, 408, 425 or 429 answer, a timeout, a refused or broken
// connection) spends the failure budget; an attempt that never recorded
// an outcome (its process died) is unfinished and spends the other one.
type CallBudget struct {
	// Failures and For: a call is given up once it has failed at least
	// Failures times and for at least For since its first failure.
	Failures int
	For      time.Duration
	// MaxUnfinished is how many attempts in a row may end without an
	// outcome before the command is quarantined as outcome unknown.
	MaxUnfinished int
}

// Verdict is what the recovery point says to do next with a call.
type Verdict int

const (
	// CallNow: attempt Attempt.N begins (the recovery point is committed).
	CallNow Verdict = iota
	// CallDone: the projector already recorded the command's outcome.
	CallDone
	// CallFailed: the failure budget is spent and every attempt failed in
	// an observed way: the upstream really failed, a 502 may be stored.
	CallFailed
	// CallOutcomeUnknown: the command is quarantined. Either its attempts
	// ended without an outcome MaxUnfinished times in a row (a crash
	// loop), or its budget is spent but some attempt never recorded an
	// outcome, so the upstream may have applied it. Nothing is stored for
	// the client; `idemgate redrive` calls again with the same key.
	CallOutcomeUnknown
	// CallRetry (after NoteFailure): the budget is not spent; try again
	// after a backoff.
	CallRetry
)

// Attempt is the recovery point of a call as BeginAttempt or NoteFailure
// left it.
type Attempt struct {
	Verdict Verdict
	// N is the attempt's number (1 for the first), with CallNow.
	N int
	// Streak is how many attempts in a row before this one ended without
	// an outcome (0: the last one ended, or this is the first).
	Streak int
	// Failures are the observed failures; Unfinished the attempts that
	// never recorded an outcome, since the command was accepted or
	// redriven.
	Failures, Unfinished int
	// FailingFor is the time since the first observed failure.
	FailingFor time.Duration
	LastError  string
}

// callRow is a call_attempts row, locked for update.
type callRow struct {
	attempts, failures, unfinished, streak int
	inFlight, quarantined                  bool
	failingFor                             float64 // seconds since the first failure, 0 when none
	lastError                              string
}

func (r callRow) attempt(v Verdict) Attempt {
	return Attempt{Verdict: v, N: r.attempts, Streak: r.streak, Failures: r.failures, Unfinished: r.unfinished,
		FailingFor: time.Duration(r.failingFor * float64(time.Second)), LastError: r.lastError}
}

// spent says whether the failure budget is spent.
func (b CallBudget) spent(r callRow) bool {
	return r.failures >= b.Failures && r.failingFor >= b.For.Seconds()
}

// readCall locks operationID's call row, creating it (with no attempt)
// when it is missing.
func readCall(ctx context.Context, tx pgx.Tx, operationID string) (callRow, error) {
	var r callRow
	if _, err := tx.Exec(ctx, `INSERT INTO call_attempts (operation_id, attempts, first_attempt_at, last_attempt_at)
VALUES ($1, 0, now(), now()) ON CONFLICT (operation_id) DO NOTHING`, operationID); err != nil {
		return r, fmt.Errorf("create recovery point: %w", err)
	}
	err := tx.QueryRow(ctx, `
SELECT attempts, failures, unfinished, unfinished_streak, in_flight, outcome_unknown_at IS NOT NULL,
       COALESCE(extract(epoch FROM now() - first_failure_at)::FLOAT8, 0), last_error
FROM call_attempts WHERE operation_id = $1 FOR UPDATE`, operationID).Scan(
		&r.attempts, &r.failures, &r.unfinished, &r.streak, &r.inFlight, &r.quarantined, &r.failingFor, &r.lastError)
	if err != nil {
		return r, fmt.Errorf("read recovery point: %w", err)
	}
	return r, nil
}

// quarantine marks the command outcome unknown.
func (s *Store) quarantine(ctx context.Context, tx pgx.Tx, operationID string, r callRow) error {
	if _, err := tx.Exec(ctx, `UPDATE call_attempts SET outcome_unknown_at = now(), in_flight = false,
    unfinished = $2, unfinished_streak = $3, last_error = $4 WHERE operation_id = $1`, operationID, r.unfinished, r.streak, r.lastError); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	return s.note(ctx, tx, operationID, HistoryQuarantined, r.attempts, r.lastError)
}

// BeginAttempt commits the recovery point of a call: that attempt n of
// cmd's call starts now, in a transaction of its own committed before the
// call, so that a crash during the call leaves a trace. An attempt still
// in flight from before never recorded an outcome (its process died): it
// is counted as unfinished, never as a failure, and the one that begins
// now resumes it under the same key. The verdict says whether to call:
// not when projector already recorded the outcome (CallDone), when the
// budget was spent before a crash could dead-letter it (CallFailed), or
// when the command is, or now becomes, quarantined (CallOutcomeUnknown).
func (s *Store) BeginAttempt(ctx context.Context, projector string, cmd idemgate.Command, b CallBudget) (a Attempt, err error) {
	err = s.db.InTx(ctx, func(tx pgx.Tx) error {
		a = Attempt{}
		var processed int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE projector = $1 AND event_id = $2`,
			projector, cmd.OperationID).Scan(&processed); err != nil {
			return fmt.Errorf("read dedup record: %w", err)
		}
		if processed > 0 {
			a.Verdict = CallDone
			return nil
		}
		r, err := readCall(ctx, tx, cmd.OperationID)
		if err != nil {
			return err
		}
		if r.quarantined {
			a = r.attempt(CallOutcomeUnknown)
			return nil
		}
		if r.inFlight {
			r.unfinished++
			r.streak++
			r.lastError = fmt.Sprintf("attempt %d ended without an outcome: the process calling died during it", r.attempts)
			if err := s.note(ctx, tx, cmd.OperationID, HistoryAttemptUnfinished, r.attempts, r.lastError); err != nil {
				return err
			}
		}
		switch {
		case r.streak >= b.MaxUnfinished, b.spent(r) && r.unfinished > 0:
			a = r.attempt(CallOutcomeUnknown)
			return s.quarantine(ctx, tx, cmd.OperationID, r)
		case b.spent(r):
			a = r.attempt(CallFailed)
			return nil
		}
		r.attempts++
		if _, err := tx.Exec(ctx, `UPDATE call_attempts SET attempts = $2, unfinished = $3, unfinished_streak = $4,
    in_flight = true, last_attempt_at = now(), last_error = $5 WHERE operation_id = $1`,
			cmd.OperationID, r.attempts, r.unfinished, r.streak, r.lastError); err != nil {
			return fmt.Errorf("record call attempt: %w", err)
		}
		a = r.attempt(CallNow)
		return s.note(ctx, tx, cmd.OperationID, HistoryAttempt, r.attempts, "")
	})
	return a, err
}

// UnfinishedStreak is how many attempts at operationID's call in a row
// ended without an outcome, counting one still in flight (its process
// died during it, or it runs elsewhere): what the next BeginAttempt will
// find.
func (s *Store) UnfinishedStreak(ctx context.Context, operationID string) (streak int, err error) {
	err = s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		streak = 0
		var inFlight bool
		err := tx.QueryRow(ctx, `SELECT unfinished_streak, in_flight FROM call_attempts WHERE operation_id = $1`, operationID).Scan(&streak, &inFlight)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if inFlight {
			streak++
		}
		return err
	})
	return streak, err
}

// NoteFailure ends the attempt in flight with an observed failure: it
// spends the failure budget, ends the run of unfinished attempts and
// keeps the reason for GET /v1/operations and the operator. The verdict
// is CallRetry while the budget lasts; then CallFailed when every attempt
// failed in an observed way, or CallOutcomeUnknown (the command is
// quarantined) when one never recorded an outcome.
func (s *Store) NoteFailure(ctx context.Context, operationID, reason string, b CallBudget) (a Attempt, err error) {
	err = s.db.InTx(ctx, func(tx pgx.Tx) error {
		r, err := readCall(ctx, tx, operationID)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `UPDATE call_attempts SET failures = failures + 1, first_failure_at = COALESCE(first_failure_at, now()),
    in_flight = false, unfinished_streak = 0, last_error = $2
WHERE operation_id = $1
RETURNING failures, extract(epoch FROM now() - first_failure_at)::FLOAT8`, operationID, truncate(reason, 500)).Scan(&r.failures, &r.failingFor)
		if err != nil {
			return fmt.Errorf("note attempt failure: %w", err)
		}
		r.streak, r.lastError = 0, truncate(reason, 500)
		if err := s.note(ctx, tx, operationID, HistoryAttemptFailed, r.attempts, reason); err != nil {
			return err
		}
		switch {
		case !b.spent(r):
			a = r.attempt(CallRetry)
		case r.unfinished == 0:
			a = r.attempt(CallFailed)
		default:
			a = r.attempt(CallOutcomeUnknown)
			return s.quarantine(ctx, tx, operationID, r)
		}
		return nil
	})
	return a, err
}

// EndAttempt ends the attempt in flight without spending any budget: the
// call failed before anything was sent (a permanent error of the command
// itself), so it is neither a failure of the upstream nor unfinished.
func (s *Store) EndAttempt(ctx context.Context, operationID, reason string) error {
	return s.db.InTx(ctx, func(tx pgx.Tx) error {
		var n int
		err := tx.QueryRow(ctx, `UPDATE call_attempts SET in_flight = false, unfinished_streak = 0, last_error = $2
WHERE operation_id = $1 RETURNING attempts`, operationID, truncate(reason, 500)).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("end attempt: %w", err)
		}
		return s.note(ctx, tx, operationID, HistoryAttemptEnded, n, reason)
	})
}

// OutcomeUnknown counts the quarantined commands and says when the oldest
// was quarantined (zero when none). A quarantined command whose outcome
// was recorded after all (an attempt believed dead was running elsewhere)
// is known.
func (s *Store) OutcomeUnknown(ctx context.Context) (n int, oldest time.Time, err error) {
	var at *time.Time
	if err := s.db.InReadCommitted(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `
SELECT count(*), min(a.outcome_unknown_at) FROM call_attempts a
WHERE a.outcome_unknown_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.operation_id = a.operation_id)`).Scan(&n, &at)
	}); err != nil {
		return 0, time.Time{}, fmt.Errorf("count commands of unknown outcome: %w", err)
	}
	if at != nil {
		oldest = *at
	}
	return n, oldest, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
