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
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
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
// effect outside tx. An error wrapping ErrPermanent says no retry can
// succeed.
type Applier interface {
	Apply(ctx context.Context, tx pgx.Tx, cmd events.CommandAccepted) (Outcome, error)
}

// Config configures a Projector.
type Config struct {
	DB *sqldb.DB
	// Name scopes the dedup records: projectors with different names each
	// apply every event once.
	Name     string
	Appliers map[string]Applier
	// Producer and DeadLetterTopic receive events that cannot be applied.
	Producer        *events.Producer
	DeadLetterTopic string
	Faults          *fault.Injector
	Registry        prometheus.Registerer
	Logger          *slog.Logger
}

// Projector routes command events to the applier of their operation.
type Projector struct {
	cfg     Config
	latency prometheus.Histogram
	applied *prometheus.CounterVec
	dead    prometheus.Counter
}

// New returns a projector.
func New(cfg Config) *Projector {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Projector{
		cfg: cfg,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "idemgate_completion_latency_seconds",
			Help:    "Time from a command's claim to its recorded outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_commands_completed_total", Help: "Commands whose outcome the projector recorded, by status.",
		}, []string{"operation", "status"}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idemgate_commands_deadlettered_total", Help: "Events sent to the dead-letter topic.",
		}),
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(p.latency, p.applied, p.dead)
	}
	return p
}

// ErrPermanent marks an event that can never be applied as it is.
var ErrPermanent = errors.New("projector: event cannot be applied")

// IsPermanent reports whether a Handle error will recur on every retry:
// an undecodable event, an applier's permanent error, or an SQL error of
// the data itself. Lost connections, timeouts and serialization failures
// are transient: the work is retried, never recorded as failed.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrPermanent) || !sqldb.IsTransient(err)
}

// Handle applies one record. It returns nil once the event's effect and
// outcome are committed (or were already), and an error otherwise (see
// IsPermanent).
func (p *Projector) Handle(ctx context.Context, rec *kgo.Record) error {
	cmd, err := decode(rec)
	if err != nil {
		return err
	}
	applier, ok := p.cfg.Appliers[cmd.Operation]
	if !ok {
		return fmt.Errorf("%w: no projector applies operation %q", ErrPermanent, cmd.Operation)
	}
	var out Outcome
	var fresh bool
	err = p.cfg.DB.InTx(ctx, func(tx pgx.Tx) error {
		fresh = false
		if done, err := p.markProcessed(ctx, tx, cmd.OperationID); err != nil || done {
			return err
		}
		var err error
		if out, err = applier.Apply(ctx, tx, cmd); err != nil {
			return err
		}
		if err := complete(ctx, tx, cmd, out); err != nil {
			return err
		}
		p.cfg.Faults.Hit(fault.InProjectorTx)
		fresh = true
		return nil
	})
	if err != nil {
		return err
	}
	if fresh {
		p.latency.Observe(time.Since(cmd.AcceptedAt).Seconds())
		p.applied.WithLabelValues(cmd.Operation, fmt.Sprint(out.Status)).Inc()
	}
	p.cfg.Faults.Hit(fault.AfterProjectorTx)
	return nil
}

// DeadLetter gives up on a record after its bounded retries: it copies the
// record to the dead-letter topic with the reason, and, when the record is
// a command, completes it with a stored 500 problem so that its client
// gets an answer. `idemgate redrive` drives it again.
func (p *Projector) DeadLetter(ctx context.Context, rec *kgo.Record, cause error) error {
	dl := &kgo.Record{Topic: p.cfg.DeadLetterTopic, Key: rec.Key, Value: rec.Value,
		Headers: append(append([]kgo.RecordHeader{}, rec.Headers...),
			kgo.RecordHeader{Key: "idemgate_error", Value: []byte(cause.Error())},
			kgo.RecordHeader{Key: "idemgate_origin", Value: []byte(fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset))})}
	if err := p.cfg.Producer.EmitSync(ctx, dl); err != nil {
		return err
	}
	p.dead.Inc()
	cmd, err := decode(rec)
	if err != nil {
		p.cfg.Logger.Error("dead-lettered an undecodable record", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", cause)
		return nil
	}
	p.cfg.Logger.Error("dead-lettered a command; its client gets a 500 processing-failed", "operation_id", cmd.OperationID, "err", cause)
	out := ProblemOutcome(idemgate.NewProblem(http.StatusInternalServerError, "processing-failed", "Processing failed",
		"the command could not be applied; an operator can drive it again (operation "+cmd.OperationID+")"))
	return p.cfg.DB.InTx(ctx, func(tx pgx.Tx) error {
		if done, err := p.markProcessed(ctx, tx, cmd.OperationID); err != nil || done {
			return err
		}
		return complete(ctx, tx, cmd, out)
	})
}

// markProcessed records the event; done is true when it was recorded
// before (a redelivery).
func (p *Projector) markProcessed(ctx context.Context, tx pgx.Tx, eventID string) (done bool, err error) {
	tag, err := tx.Exec(ctx, `INSERT INTO processed_events (projector, event_id) VALUES ($1, $2)
ON CONFLICT (projector, event_id) DO NOTHING`, p.cfg.Name, eventID)
	if err != nil {
		return false, fmt.Errorf("record event: %w", err)
	}
	return tag.RowsAffected() == 0, nil
}

func decode(rec *kgo.Record) (events.CommandAccepted, error) {
	env, err := events.Decode(rec)
	if err != nil {
		return events.CommandAccepted{}, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	cmd, err := events.DecodeCommand(env)
	if err != nil {
		return events.CommandAccepted{}, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return cmd, nil
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
