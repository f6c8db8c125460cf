package health

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idemgate/idemgate/internal/tick"
	"github.com/idemgate/idemgate/logging"
)

// Backlog counts the commands stuck on their way, and tells when the
// oldest of each kind started waiting (*store.Store does).
type Backlog interface {
	// OutcomeUnknown: quarantined as outcome unknown.
	OutcomeUnknown(ctx context.Context) (n int, oldest time.Time, err error)
	// Accepted: their event not acknowledged by Kafka yet.
	Accepted(ctx context.Context) (n int, oldest time.Time, err error)
}

// Gauges exports what the database knows and no one process sees: the
// commands quarantined as outcome unknown (an operator must redrive
// them), the commands Kafka has not acknowledged (the sweeper re-emits
// them), and how long the oldest of each has waited.
type Gauges struct {
	store                    Backlog
	unknown, oldest          prometheus.Gauge
	accepted, acceptedOldest prometheus.Gauge
	log                      *logging.Throttle
}

// NewGauges registers the gauges with reg.
func NewGauges(st Backlog, reg prometheus.Registerer, logger *slog.Logger) (*Gauges, error) {
	g := &Gauges{
		store: st,
		unknown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idemgate_commands_outcome_unknown",
			Help: "Commands whose upstream call is quarantined as outcome unknown: nothing is stored for them until `idemgate redrive`.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idemgate_commands_outcome_unknown_oldest_age_seconds",
			Help: "How long the oldest command of unknown outcome has been quarantined (0 when none).",
		}),
		accepted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idemgate_pending_commands",
			Help: "Commands accepted whose event Kafka has not acknowledged yet (state accepted): the sweeper re-emits them after their lease.",
		}),
		acceptedOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idemgate_pending_oldest_age_seconds",
			Help: "How long ago the oldest command whose event Kafka has not acknowledged was accepted (0 when none).",
		}),
		log: logging.NewThrottle(logger, 30*time.Second),
	}
	for _, c := range []prometheus.Collector{g.unknown, g.oldest, g.accepted, g.acceptedOldest} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Run reads the database every interval until ctx ends.
func (g *Gauges) Run(ctx context.Context, interval time.Duration) error {
	g.read(ctx)
	tick.Every(ctx, interval, g.read)
	return nil
}

// read sets the gauges from the database.
func (g *Gauges) read(ctx context.Context) {
	for _, c := range []struct {
		what      string
		read      func(context.Context) (int, time.Time, error)
		n, oldest prometheus.Gauge
	}{
		{"the commands of unknown outcome", g.store.OutcomeUnknown, g.unknown, g.oldest},
		{"the commands Kafka has not acknowledged", g.store.Accepted, g.accepted, g.acceptedOldest},
	} {
		n, oldest, err := c.read(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			g.log.Warn("gauges: count "+c.what, "err", err)
		case err == nil:
			c.n.Set(float64(n))
			c.oldest.Set(0)
			if n > 0 {
				c.oldest.Set(max(0, time.Since(oldest).Seconds()))
			}
		}
	}
}
