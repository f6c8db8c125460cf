package main

import (
	"context"
	"time"
)

// hogPeriod is the hog's cycle: it spins for share of it and sleeps the
// rest, so that it takes about share of one core, in slices short enough
// for the scheduler to see a steady load.
const hogPeriod = 10 * time.Millisecond

// hogSlices splits one period into its busy and idle parts.
func hogSlices(share float64, period time.Duration) (busy, idle time.Duration) {
	busy = time.Duration(share * float64(period))
	return busy, period - busy
}

// hog burns share of one core until d is over or ctx ends.
func hog(ctx context.Context, share float64, d time.Duration) {
	busy, idle := hogSlices(share, hogPeriod)
	end := time.Now().Add(d)
	for ctx.Err() == nil && time.Now().Before(end) {
		for spin := time.Now().Add(busy); time.Now().Before(spin); {
		}
		if idle > 0 {
			time.Sleep(idle)
		}
	}
}
