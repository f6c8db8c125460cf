package command

import (
	"context"
	"log/slog"
	"time"

	"github.com/idemgate/idemgate/store"
)

// Janitor deletes keys past their retention, in bounded batches so that a
// backlog never becomes one huge transaction.
type Janitor struct {
	store    *store.Store
	interval time.Duration
	batch    int
	logger   *slog.Logger
}

// NewJanitor returns a janitor that runs every interval.
func NewJanitor(st *store.Store, interval time.Duration, batch int, logger *slog.Logger) *Janitor {
	return &Janitor{store: st, interval: interval, batch: batch, logger: logger}
}

// Run deletes expired keys until ctx ends.
func (j *Janitor) Run(ctx context.Context) error {
	t := time.NewTicker(j.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		total := 0
		for {
			n, err := j.store.DeleteExpired(ctx, j.batch)
			total += n
			if err != nil {
				if ctx.Err() == nil {
					j.logger.Warn("delete expired keys", "err", err)
				}
				break
			}
			if n < j.batch {
				break
			}
		}
		if total > 0 {
			j.logger.Info("deleted keys past their retention", "n", total)
		}
	}
}
