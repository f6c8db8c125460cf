// Package projector applies command events exactly once in effect: per
// event ONE SQL transaction records the event as processed (a redelivery
// finds it and does nothing), applies the projection, writes the outbox
// row with the response and completes the claim.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/sqldb"
)

// Outcome is the response a command produced, recorded in the outbox and
// replayed byte for byte to every retry.
type Outcome struct {
	Status      int
	ContentType string
	Location    string
	Body        []byte
}

// ProblemOutcome records a business failure (a declined payment, a refund
// too large) as a problem response: the command is completed, and its
// retries get the same problem.
func ProblemOutcome(p *idemgate.Problem) Outcome {
	return Outcome{Status: p.Status, ContentType: idemgate.ContentTypeProblem, Body: p.Body()}
}

// Applier applies one operation's command inside the projector's
// transaction and returns its outcome. It may run more than once (the
// transaction is retried on serialization failures), so it must have no
// effect outside tx.
type Applier interface {
	Apply(ctx context.Context, tx pgx.Tx, cmd events.CommandAccepted) (Outcome, error)
}

// Projector routes command events to the applier of their operation.
type Projector struct {
	db       *sqldb.DB
	name     string
	appliers map[string]Applier
	logger   *slog.Logger
}

// New returns a projector. name scopes its dedup records: two projectors
// with different names each apply every event once.
func New(db *sqldb.DB, name string, appliers map[string]Applier, logger *slog.Logger) *Projector {
	return &Projector{db: db, name: name, appliers: appliers, logger: logger}
}

// ErrPermanent marks an event that can never be applied as it is.
var ErrPermanent = errors.New("projector: event cannot be applied")

// Handle applies one record. It returns nil once the event's effect and
// outcome are committed (or were already), an error wrapping ErrPermanent
// for an event that no retry can apply, and any other error for a
// transient failure that the caller must retry.
func (p *Projector) Handle(ctx context.Context, rec *kgo.Record) error {
	env, err := events.Decode(rec)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	cmd, err := events.DecodeCommand(env)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	applier, ok := p.appliers[cmd.Operation]
	if !ok {
		// Record an answer rather than leave the client waiting for ever.
		applier = failed(fmt.Sprintf("no projector applies operation %q", cmd.Operation))
	}
	return p.db.InTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO processed_events (projector, event_id) VALUES ($1, $2)
ON CONFLICT (projector, event_id) DO NOTHING`, p.name, env.ID)
		if err != nil {
			return fmt.Errorf("record event: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil // applied before: a redelivery
		}
		out, err := applier.Apply(ctx, tx, cmd)
		if err != nil {
			return err
		}
		return complete(ctx, tx, cmd, out)
	})
}

// complete writes the outbox row and moves the claim to COMPLETED.
func complete(ctx context.Context, tx pgx.Tx, cmd events.CommandAccepted, out Outcome) error {
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (operation_id, tenant_id, operation, status, content_type, location, body)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (operation_id) DO NOTHING`,
		cmd.OperationID, cmd.Tenant, cmd.Operation, out.Status, out.ContentType, out.Location, out.Body); err != nil {
		return fmt.Errorf("write outbox: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE idempotency_claims SET state = 'COMPLETED', completed_at = now()
WHERE operation_id = $1 AND state <> 'COMPLETED'`, cmd.OperationID); err != nil {
		return fmt.Errorf("complete claim: %w", err)
	}
	return nil
}

// processingFailed is the recorded outcome of a command that could not be
// applied, so that its client still gets an answer.
func processingFailed(detail string) Outcome {
	return ProblemOutcome(idemgate.NewProblem(http.StatusInternalServerError, "processing-failed", "Processing failed", detail))
}

// failed is an applier that records processingFailed.
type failed string

func (f failed) Apply(context.Context, pgx.Tx, events.CommandAccepted) (Outcome, error) {
	return processingFailed(string(f)), nil
}
