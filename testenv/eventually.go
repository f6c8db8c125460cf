package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Eventually waits until check returns nil, for at most within, and fails
// t with check's last error if it never does. It is how a test waits for
// something it can observe (a row, a log line, a partition owned, a lock
// wait in pg_stat_activity): never sleep for "by now it has happened".
// The checks come at growing intervals, from 5 ms to 200 ms.
func Eventually(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	if err := Poll(context.Background(), within, check); err != nil {
		t.Fatalf("%s: not so after %v: %v", what, within, err)
	}
}

// Poll waits until check returns nil, for at most within or until ctx
// ends, and returns check's last error (wrapped with how long it waited)
// if it never does. It does not touch a testing.T, so a goroutine may
// call it.
func Poll(ctx context.Context, within time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	start := time.Now()
	pause := 5 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", time.Since(start).Round(time.Millisecond), err)
		case <-time.After(pause):
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// Check turns a condition into a check for Eventually: nil when ok,
// otherwise an error saying what is not so yet.
func Check(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	if len(args) == 0 {
		return errors.New(format)
	}
	return fmt.Errorf(format, args...)
}
