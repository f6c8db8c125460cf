// Package projector applies command events exactly once in effect. For an
// operation applied in the database, ONE transaction records the event as
// processed (a redelivery finds it and does nothing), applies the effect,
// writes the outbox row with the response and completes the claim. The
// operations come from a registry: the projector knows none of them.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
)

// Config configures a Projector.
type Config struct {
	Store    *store.Store
	Registry *idemgate.Registry
	// Name scopes the dedup records: projectors with different names each
	// apply every event once.
	Name string
	// Producer and DeadLetterTopic receive events that cannot be applied.
	Producer        *events.Producer
	DeadLetterTopic string
	Faults          *fault.Injector
	Registerer      prometheus.Registerer
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
func New(cfg Config) (*Projector, error) {
	if cfg.Store == nil || cfg.Registry == nil || cfg.Name == "" {
		return nil, errors.New("projector: a store, a registry and a name are required")
	}
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
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{p.latency, p.applied, p.dead} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("projector: %w", err)
			}
		}
	}
	return p, nil
}

// IsPermanent reports whether a Handle error will recur on every retry:
// an undecodable event, an applier's permanent error, or an SQL error of
// the data itself. Lost connections, timeouts and serialization failures
// are transient: the work is retried, never recorded as failed.
func IsPermanent(err error) bool {
	return errors.Is(err, idemgate.ErrPermanent) || !sqldb.IsTransient(err)
}

// Handle applies one record. It returns nil once the event's effect and
// outcome are committed (or were already), and an error otherwise (see
// IsPermanent).
func (p *Projector) Handle(ctx context.Context, rec *kgo.Record) error {
	cmd, err := decode(rec)
	if err != nil {
		return err
	}
	op, ok := p.cfg.Registry.Operation(cmd.Operation)
	if !ok {
		return fmt.Errorf("%w: no operation %q is registered", idemgate.ErrPermanent, cmd.Operation)
	}
	if op.Apply == nil {
		return fmt.Errorf("%w: operation %q has no applier this projector can run", idemgate.ErrPermanent, cmd.Operation)
	}
	resp, fresh, err := p.cfg.Store.ApplyOnce(ctx, p.cfg.Name, cmd,
		func(ctx context.Context, tx pgx.Tx) (idemgate.Response, error) { return op.Apply.ApplyTx(ctx, tx, cmd) },
		func() { p.cfg.Faults.Hit(fault.InProjectorTx) })
	if err != nil {
		return err
	}
	if fresh {
		p.observe(cmd, resp)
	}
	p.cfg.Faults.Hit(fault.AfterProjectorTx)
	return nil
}

func (p *Projector) observe(cmd idemgate.Command, resp idemgate.Response) {
	p.latency.Observe(time.Since(cmd.AcceptedAt).Seconds())
	p.applied.WithLabelValues(cmd.Operation, fmt.Sprint(resp.Status)).Inc()
}

func decode(rec *kgo.Record) (idemgate.Command, error) {
	env, err := events.Decode(rec)
	if err != nil {
		return idemgate.Command{}, fmt.Errorf("%w: %w", idemgate.ErrPermanent, err)
	}
	cmd, err := events.DecodeCommand(env)
	if err != nil {
		return idemgate.Command{}, fmt.Errorf("%w: %w", idemgate.ErrPermanent, err)
	}
	return cmd, nil
}
