package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
)

// Effect is the part of a command's application that happens inside the
// store's transaction: it writes its own tables through tx and returns
// the response to record. It may run more than once (the transaction is
// retried) and must have no effect outside tx.
type Effect func(ctx context.Context, tx pgx.Tx) (idemgate.Response, error)

// ApplyOnce applies a command exactly once in effect, in ONE transaction:
// it records cmd as processed by projector and completes its claim (a
// redelivered event finds either done, or its claim gone with the key's
// retention, and does nothing more), runs effect and writes the response
// to the outbox. fresh is false when the command had already been
// processed; its response is then not returned.
//
// The hook, when not nil, runs inside the transaction after the writes and
// before the commit (a fault point).
func (s *Store) ApplyOnce(ctx context.Context, projector string, cmd idemgate.Command, effect Effect, hook func()) (resp idemgate.Response, fresh bool, err error) {
	err = s.db.InTx(ctx, func(tx pgx.Tx) error {
		fresh = false
		if done, err := markProcessed(ctx, tx, projector, cmd.OperationID); err != nil || done {
			return err
		}
		if open, err := completeClaim(ctx, tx, cmd.OperationID); err != nil || !open {
			return err
		}
		var err error
		if resp, err = effect(ctx, tx); err != nil {
			return err
		}
		if err := writeOutbox(ctx, tx, cmd, resp); err != nil {
			return err
		}
		if hook != nil {
			hook()
		}
		fresh = true
		return nil
	})
	if errors.Is(err, errNotOpen) {
		return idemgate.Response{}, false, nil
	}
	return resp, fresh, err
}

// errNotOpen rolls back an application whose claim is completed or gone.
var errNotOpen = errors.New("store: the claim is not open")

// RecordOnce completes a command with resp and no other effect (a
// dead-lettered command's 500, an upstream's answer), unless the command
// was already processed.
func (s *Store) RecordOnce(ctx context.Context, projector string, cmd idemgate.Command, resp idemgate.Response) (fresh bool, err error) {
	_, fresh, err = s.ApplyOnce(ctx, projector, cmd, func(context.Context, pgx.Tx) (idemgate.Response, error) { return resp, nil }, nil)
	return fresh, err
}

// markProcessed records the event; done is true when it was recorded
// before (a redelivery).
func markProcessed(ctx context.Context, tx pgx.Tx, projector, eventID string) (done bool, err error) {
	tag, err := tx.Exec(ctx, `INSERT INTO processed_events (projector, event_id) VALUES ($1, $2)
ON CONFLICT (projector, event_id) DO NOTHING`, projector, eventID)
	if err != nil {
		return false, fmt.Errorf("record event: %w", err)
	}
	return tag.RowsAffected() == 0, nil
}

// completeClaim moves the claim to COMPLETED; open is false when there
// was no claim left to complete, and then errNotOpen rolls the whole
// application back.
func completeClaim(ctx context.Context, tx pgx.Tx, operationID string) (open bool, err error) {
	tag, err := tx.Exec(ctx, `UPDATE idempotency_claims SET state = 'COMPLETED', completed_at = now()
WHERE operation_id = $1 AND state <> 'COMPLETED'`, operationID)
	if err != nil {
		return false, fmt.Errorf("complete claim: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return false, errNotOpen
	}
	return true, nil
}

// writeOutbox records the response.
func writeOutbox(ctx context.Context, tx pgx.Tx, cmd idemgate.Command, resp idemgate.Response) error {
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (operation_id, tenant_id, operation, status, content_type, location, body)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (operation_id) DO NOTHING`,
		cmd.OperationID, cmd.Tenant, cmd.Operation, resp.Status, resp.ContentType, resp.Location, resp.Body); err != nil {
		return fmt.Errorf("write outbox: %w", err)
	}
	return nil
}
