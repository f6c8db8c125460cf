package command

import (
	"context"
	"log/slog"
	"time"

	"github.com/idemgate/idemgate/store"
)

// Sweeper re-emits claims left ACCEPTED past their lease: the API died
// between the claim commit and the Kafka acknowledgement, or Kafka was
// down. Taking a claim extends its lease, so sweepers in several
// processes never emit the same claim at the same moment.
type Sweeper struct {
	store    *store.Store
	emitter  *Emitter
	interval time.Duration
	batch    int
	logger   *slog.Logger
}

// NewSweeper returns a sweeper that looks every interval at up to batch
// claims.
func NewSweeper(st *store.Store, emitter *Emitter, interval time.Duration, batch int, logger *slog.Logger) *Sweeper {
	return &Sweeper{store: st, emitter: emitter, interval: interval, batch: batch, logger: logger}
}

// Run sweeps until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for {
			cmds, err := s.store.ExpiredLeases(ctx, s.batch)
			if err != nil {
				if ctx.Err() == nil {
					s.logger.Warn("sweep", "err", err)
				}
				break
			}
			for _, c := range cmds {
				s.emitter.Emit(c)
			}
			if len(cmds) > 0 {
				s.logger.Info("re-emitted commands past their lease", "n", len(cmds))
			}
			if len(cmds) < s.batch {
				break
			}
		}
	}
}
