// Package logging builds idemgate's loggers and keeps them quiet when the
// same thing goes wrong many times a second.
package logging

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Throttle logs a message at most once per interval; the lines it holds
// back are counted and reported with the next one ("suppressed": n).
// During an outage a loop that fails every 200 ms then logs a few lines
// a minute, not five a second.
type Throttle struct {
	logger   *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	held     map[string]int
}

// NewThrottle returns a throttle on logger.
func NewThrottle(logger *slog.Logger, interval time.Duration) *Throttle {
	if logger == nil {
		logger = slog.Default()
	}
	return &Throttle{logger: logger, interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

// Warn logs msg at warning level unless it was logged within the interval.
func (t *Throttle) Warn(msg string, args ...any) { t.log(slog.LevelWarn, msg, args) }

// Error logs msg at error level unless it was logged within the interval.
func (t *Throttle) Error(msg string, args ...any) { t.log(slog.LevelError, msg, args) }

func (t *Throttle) log(level slog.Level, msg string, args []any) {
	now := time.Now()
	t.mu.Lock()
	if now.Sub(t.last[msg]) < t.interval {
		t.held[msg]++
		t.mu.Unlock()
		return
	}
	held := t.held[msg]
	t.last[msg], t.held[msg] = now, 0
	t.mu.Unlock()
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	t.logger.Log(context.Background(), level, msg, args...)
}
