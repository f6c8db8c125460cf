package emit

import (
	"context"
	"log/slog"
	"time"

	"github.com/idemgate/idemgate/logging"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/tracing"

	"github.com/idemgate/idemgate/internal/tick"
)

// Sweeper re-emits claims left accepted past their lease: the API died
// between the claim commit and the Kafka acknowledgement, or Kafka was
// down. Taking a claim extends its lease, so sweepers in several
// processes never emit the same claim at the same moment.
type Sweeper struct {
	store    *store.Store
	emitter  *Emitter
	interval time.Duration
	batch    int
	logger   *slog.Logger
	log      *logging.Throttle
}

// NewSweeper returns a sweeper that looks every interval at up to batch
// claims.
func NewSweeper(st *store.Store, emitter *Emitter, interval time.Duration, batch int, logger *slog.Logger) *Sweeper {
	return &Sweeper{store: st, emitter: emitter, interval: interval, batch: batch, logger: logger, log: logging.NewThrottle(logger, 30*time.Second)}
}

// Run sweeps until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	tick.Every(ctx, s.interval, func(ctx context.Context) {
		n, err := s.sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("sweeper: reading claims past their lease failed", "err", err)
		}
		if n > 0 {
			s.logger.Info("re-emitted commands past their lease", "n", n)
		}
	})
	return nil
}

// sweep re-emits the claims past their lease, a batch at a time, until a
// batch comes back short (the backlog is done) or the store fails; it
// returns how many it re-emitted.
func (s *Sweeper) sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		cmds, taken, err := s.store.ExpiredLeases(ctx, s.batch)
		for _, c := range cmds {
			s.emitter.Emit(tracing.FromTraceParent(ctx, c.TraceParent), c)
		}
		total += len(cmds)
		if err != nil || taken < s.batch {
			return total, err
		}
	}
}
