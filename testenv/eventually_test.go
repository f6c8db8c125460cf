package testenv

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPollReturnsOnceTheCheckPasses(t *testing.T) {
	var calls atomic.Int32
	err := Poll(context.Background(), time.Minute, func() error {
		if calls.Add(1) < 4 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls.Load() != 4 {
		t.Fatalf("Poll = %v after %d checks, want nil after 4", err, calls.Load())
	}
}

func TestPollGivesTheLastErrorWhenTimeRunsOut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := Poll(ctx, time.Minute, func() error {
		n++
		if n == 3 {
			cancel() // the caller's context ends: Poll stops without waiting out the minute
		}
		return Check(false, "still %d", n)
	})
	if err == nil || !strings.Contains(err.Error(), "still 3") {
		t.Fatalf("Poll = %v, want the last check's error (still 3)", err)
	}
}
