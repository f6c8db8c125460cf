package tick

import (
	"context"
	"testing"
	"time"
)

// TestEveryUntilTheContextEnds: f runs once per interval, not before the
// first has passed, and Every returns once ctx ends (not during a call).
func TestEveryUntilTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, 10*time.Millisecond, func(ctx context.Context) {
			calls++
			if calls == 1 && time.Since(start) < 10*time.Millisecond {
				t.Errorf("first call after %v, before one interval", time.Since(start))
			}
			if calls == 3 {
				cancel()
			}
			if ctx.Err() != nil && calls != 3 {
				t.Errorf("call %d after the context ended", calls)
			}
		})
	}()
	<-done
	if calls != 3 {
		t.Fatalf("%d calls, want 3 (the context ended in the third)", calls)
	}
}
