package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate/sqldb"
)

// ErrNotDeadLettered says a redrive was asked for a command that did not
// end in a processing failure.
var ErrNotDeadLettered = errors.New("the operation did not end in a processing failure")

// Redrive drives a dead-lettered command again: it removes its stored 500
// problem and its dedup record and puts its claim back to ACCEPTED with an
// expired lease, so that the sweeper emits it once more. Nothing else was
// applied for it, so applying it now is its one effect.
func Redrive(ctx context.Context, db *sqldb.DB, projectorName, operationID string) error {
	return db.InTx(ctx, func(tx pgx.Tx) error {
		var status int
		var body []byte
		err := tx.QueryRow(ctx, `SELECT status, body FROM outbox WHERE operation_id = $1`, operationID).Scan(&status, &body)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("operation %s: %w (it has no recorded outcome)", operationID, ErrNotDeadLettered)
		}
		if err != nil {
			return fmt.Errorf("read outcome: %w", err)
		}
		if status != 500 {
			return fmt.Errorf("operation %s: %w (its outcome is %d)", operationID, ErrNotDeadLettered, status)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE operation_id = $1`, operationID); err != nil {
			return fmt.Errorf("redrive: delete outcome: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM processed_events WHERE projector = $1 AND event_id = $2`, projectorName, operationID); err != nil {
			return fmt.Errorf("redrive: delete dedup record: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE idempotency_claims SET state = 'ACCEPTED', completed_at = NULL, lease_until = now()
WHERE operation_id = $1`, operationID); err != nil {
			return fmt.Errorf("redrive: reopen claim: %w", err)
		}
		return nil
	})
}
