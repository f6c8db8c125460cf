package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// HistoryKind names an entry of a command's history (command_history).
type HistoryKind string

// The kinds of history entries; none is written on a command's normal
// path.
const (
	// HistoryReemitted: a sweeper emitted the command again, its lease
	// having passed (Region is the sweeper's).
	HistoryReemitted HistoryKind = "reemitted"
	// HistoryAttempt: upstream attempt Attempt began.
	HistoryAttempt HistoryKind = "attempt"
	// HistoryAttemptFailed: it failed in an observed way (Detail: why).
	HistoryAttemptFailed HistoryKind = "attempt_failed"
	// HistoryAttemptEnded: it ended before anything was sent (Detail).
	HistoryAttemptEnded HistoryKind = "attempt_ended"
	// HistoryAttemptUnfinished: it never recorded an outcome (its
	// process died during it), found by the next attempt.
	HistoryAttemptUnfinished HistoryKind = "attempt_unfinished"
	// HistoryQuarantined: quarantined as outcome unknown.
	HistoryQuarantined HistoryKind = "quarantined"
	// HistoryRedriven: an operator drove it again (Detail: the outcome
	// it had).
	HistoryRedriven HistoryKind = "redriven"
)

// HistoryEntry is one entry of a command's history.
type HistoryEntry struct {
	At      time.Time
	Kind    HistoryKind
	Attempt int    // for the attempt kinds; 0 otherwise
	Detail  string // an error, a reason
	Region  string // the region that wrote it, when the store has one
}

// note writes a history entry of operationID in tx.
func (s *Store) note(ctx context.Context, tx pgx.Tx, operationID string, kind HistoryKind, attempt int, detail string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO command_history (operation_id, kind, attempt, detail, region)
VALUES ($1, $2, NULLIF($3::INT4, 0), $4, NULLIF($5::TEXT, '')) ON CONFLICT DO NOTHING`,
		operationID, string(kind), attempt, truncate(detail, 500), s.region); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}

// History reads operationID's history, oldest first.
func (s *Store) History(ctx context.Context, operationID string) ([]HistoryEntry, error) {
	var out []HistoryEntry
	err := s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT at, kind, COALESCE(attempt, 0), detail, COALESCE(region, '')
FROM command_history WHERE operation_id = $1 ORDER BY at, kind`, operationID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryEntry, error) {
			var e HistoryEntry
			var kind string
			err := r.Scan(&e.At, &kind, &e.Attempt, &e.Detail, &e.Region)
			e.Kind = HistoryKind(kind)
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}
