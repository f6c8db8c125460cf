package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
)

// BeginAttempt commits the recovery point of a call: that attempt number
// n (1 for the first) of cmd's call starts now. It is its own
// transaction, committed before the call, so that a crash during the call
// leaves a trace and counts against the budget of max attempts. done is
// true when projector has already recorded the command's response: there
// is nothing to call. n is 0 when the budget is spent.
func (s *Store) BeginAttempt(ctx context.Context, projector string, cmd idemgate.Command, max int) (n int, done bool, err error) {
	err = s.db.InTx(ctx, func(tx pgx.Tx) error {
		n, done = 0, false
		var processed int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE projector = $1 AND event_id = $2`,
			projector, cmd.OperationID).Scan(&processed); err != nil {
			return fmt.Errorf("read dedup record: %w", err)
		}
		if processed > 0 {
			done = true
			return nil
		}
		err := tx.QueryRow(ctx, `
INSERT INTO call_attempts (operation_id, attempts, first_attempt_at, last_attempt_at) VALUES ($1, 1, now(), now())
ON CONFLICT (operation_id) DO UPDATE SET attempts = call_attempts.attempts + 1, last_attempt_at = now()
WHERE call_attempts.attempts < $2
RETURNING attempts`, cmd.OperationID, max).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // spent: n stays 0
		}
		if err != nil {
			return fmt.Errorf("record call attempt: %w", err)
		}
		return nil
	})
	return n, done, err
}

// NoteAttemptError records why the last attempt failed, for
// GET /v1/operations and the operator.
func (s *Store) NoteAttemptError(ctx context.Context, operationID, reason string) error {
	return s.db.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE call_attempts SET last_error = $2 WHERE operation_id = $1`, operationID, truncate(reason, 500)); err != nil {
			return fmt.Errorf("note attempt error: %w", err)
		}
		return nil
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
