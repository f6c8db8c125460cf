package health

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idemgate/idemgate/logging"

	"github.com/idemgate/idemgate/internal/tick"
)

// Quarantine counts the commands quarantined as outcome unknown and
// tells when the oldest was (*store.Store does).
type Quarantine interface {
	OutcomeUnknown(ctx context.Context) (n int, oldest time.Time, err error)
}

// Gauges exports what the database knows and no one process sees: the
// commands quarantined as outcome unknown (an operator must redrive
// them), and how long the oldest has waited.
type Gauges struct {
	store   Quarantine
	unknown prometheus.Gauge
	oldest  prometheus.Gauge
	log     *logging.Throttle
}

// NewGauges registers the gauges with reg.
func NewGauges(st Quarantine, reg prometheus.Registerer, logger *slog.Logger) (*Gauges, error) {
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
		log: logging.NewThrottle(logger, 30*time.Second),
	}
	for _, c := range []prometheus.Collector{g.unknown, g.oldest} {
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
	n, oldest, err := g.store.OutcomeUnknown(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		g.log.Warn("gauges: count the commands of unknown outcome", "err", err)
	case err == nil:
		g.unknown.Set(float64(n))
		g.oldest.Set(0)
		if n > 0 {
			g.oldest.Set(max(0, time.Since(oldest).Seconds()))
		}
	}
}
