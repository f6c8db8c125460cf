// Package tick holds the one loop of idemgate's background workers: a
// piece of work done every interval until the context ends.
package tick

import (
	"context"
	"time"
)

// Every calls f every interval, the first time one interval from now,
// until ctx ends; a call that takes longer than the interval is followed
// by the next at once (time.Ticker drops the ticks missed meanwhile). It
// returns once ctx has ended, and calls f no more after that; it never
// cuts a call short. Callers that work at once call f themselves first.
func Every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil { // both were ready: the end wins
			return
		}
		f(ctx)
	}
}
