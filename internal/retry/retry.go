// Package retry holds idemgate's rules for waiting before trying again,
// each in one place: the Retry-After header, read (by the SDK and the
// gateway) and written (by the API), and the exponential backoff with
// jitter that every retry loop uses, over github.com/cenkalti/backoff/v5.
package retry

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// MaxAfter caps a Retry-After that is read: a server asking for more than
// a day is taken to ask for a day (and a huge number cannot overflow a
// time.Duration). Callers cap it further to their own budgets.
const MaxAfter = 24 * time.Hour

// ParseAfter reads a Retry-After value (RFC 9110 10.2.3): delta-seconds or
// an HTTP date, relative to now; a date already past is 0. ok is false
// when the value is empty or unreadable (a negative number included).
func ParseAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(MaxAfter/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxAfter), true
	}
	return 0, false
}

// SetAfter asks the client to wait d before trying again: Retry-After in
// whole seconds, rounded up, at least 1.
func SetAfter(h http.Header, d time.Duration) {
	secs := max(int64((d+time.Second-1)/time.Second), 1)
	h.Set("Retry-After", strconv.FormatInt(secs, 10))
}

// Policy is an exponential backoff with jitter: the ceiling of the wait
// before retry n (n >= 1) is Base·2^(n-1), capped at Max, and the wait is
// drawn uniformly from [ceiling·(1-Jitter), ceiling]. Jitter 1 is full
// jitter (spreads out clients that failed together), 0 is none.
type Policy struct {
	Base, Max time.Duration
	Jitter    float64
}

// New returns the policy as a backoff.BackOff: its successive NextBackOff
// calls are the waits before retries 1, 2, and so on. It never returns
// backoff.Stop; callers bound their attempts themselves.
func (p Policy) New() *backoff.ExponentialBackOff {
	j := min(max(p.Jitter, 0), 1)
	// The library draws from interval·[1-f, 1+f]: interval = ceiling·(1-j/2)
	// and f = j/(2-j) make that [ceiling·(1-j), ceiling].
	mid := 1 - j/2
	b := &backoff.ExponentialBackOff{
		InitialInterval:     time.Duration(float64(min(p.Base, p.Max)) * mid),
		RandomizationFactor: j / (2 - j),
		Multiplier:          2,
		MaxInterval:         time.Duration(float64(p.Max) * mid),
	}
	b.Reset()
	return b
}

// Delay is the wait before retry n (n >= 1), for a caller that keeps its
// own count of failures (the projector's is in the database).
func (p Policy) Delay(n int) time.Duration {
	b := p.New()
	d := b.NextBackOff()
	for range min(max(n, 1), 64) - 1 { // the ceiling reaches Max well before 64 doublings
		d = b.NextBackOff()
	}
	return d
}

// Sleep waits d between two attempts, or until ctx ends (then it returns
// ctx's error at once); a d of zero or less waits nothing.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
