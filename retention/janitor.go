// Package retention forgets what idemgate no longer needs to remember:
// its Janitor deletes the keys past their retention and the projectors'
// dedup records past the dedup window.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/idemgate/idemgate/logging"
	"github.com/idemgate/idemgate/store"

	"github.com/idemgate/idemgate/internal/tick"
)

// Janitor forgets what is past its time, in bounded batches so that a
// backlog never becomes one huge transaction: keys past their retention,
// and the projectors' dedup records past the dedup window.
type Janitor struct {
	store       *store.Store
	interval    time.Duration
	batch       int
	dedupWindow time.Duration
	logger      *slog.Logger
	log         *logging.Throttle
}

// NewJanitor returns a janitor that runs every interval.
func NewJanitor(st *store.Store, interval time.Duration, batch int, dedupWindow time.Duration, logger *slog.Logger) *Janitor {
	return &Janitor{store: st, interval: interval, batch: batch, dedupWindow: dedupWindow, logger: logger,
		log: logging.NewThrottle(logger, 30*time.Second)}
}

// Run deletes until ctx ends.
func (j *Janitor) Run(ctx context.Context) error {
	tick.Every(ctx, j.interval, func(ctx context.Context) {
		keys, err := inBatches(ctx, j.batch, func(ctx context.Context) (int, error) { return j.store.DeleteExpired(ctx, j.batch) })
		if err != nil && ctx.Err() == nil {
			j.log.Warn("janitor: delete expired keys", "err", err)
		}
		dedup, err := inBatches(ctx, j.batch, func(ctx context.Context) (int, error) {
			return j.store.DeleteOldDedupRecords(ctx, j.dedupWindow, j.batch)
		})
		if err != nil && ctx.Err() == nil {
			j.log.Warn("janitor: delete old dedup records", "err", err)
		}
		if keys+dedup > 0 {
			j.logger.Info("janitor: forgot keys past their retention and dedup records past the window", "keys", keys, "dedup_records", dedup)
		}
	})
	return nil
}

// inBatches calls take until it returns fewer than batch (the backlog is
// done) or fails, and returns the total taken.
func inBatches(ctx context.Context, batch int, take func(context.Context) (int, error)) (int, error) {
	total := 0
	for {
		n, err := take(ctx)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}
