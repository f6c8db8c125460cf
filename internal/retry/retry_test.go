package retry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestParseAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"1", time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
		{now.Add(3 * time.Second).Format(http.TimeFormat), 3 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"Sunday, 04-Jan-26 03:04:15 GMT", 2*24*time.Hour + 10*time.Second, true}, // RFC 850, still allowed; over a day
		{now.Add(time.Hour).Format(time.ANSIC), time.Hour, true},                  // asctime
		{"99999999999", MaxAfter, true},
		{"99999999999999999999", 0, false}, // not an int64: unreadable
	}
	for _, tc := range cases {
		got, ok := ParseAfter(tc.value, now)
		if tc.want > MaxAfter {
			tc.want = MaxAfter
		}
		if got != tc.want || ok != tc.ok {
			t.Errorf("Retry-After %q: %s %v, want %s %v", tc.value, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSetAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", time.Minute: "60"} {
		h := http.Header{}
		SetAfter(h, d)
		if got := h.Get("Retry-After"); got != want {
			t.Errorf("SetAfter(%s) = %q, want %q", d, got, want)
		}
		if back, ok := ParseAfter(h.Get("Retry-After"), time.Now()); !ok || back < d {
			t.Errorf("SetAfter(%s) reads back as %s %v", d, back, ok)
		}
	}
}

// Each wait lies in [ceiling·(1-Jitter), ceiling], the ceiling doubling
// from Base to Max, and spreads over that interval.
func TestPolicyBounds(t *testing.T) {
	for _, p := range []Policy{
		{Base: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: 1},
		{Base: time.Second, Max: 30 * time.Second, Jitter: 0.5},
		{Base: 50 * time.Millisecond, Max: 5 * time.Second, Jitter: 0},
		{Base: 2 * time.Millisecond, Max: 16 * time.Millisecond, Jitter: 1},
		{Base: 3 * time.Second, Max: time.Second, Jitter: 1}, // Base above Max: Max
	} {
		ceiling := func(n int) time.Duration {
			c := p.Max
			if n <= 20 && p.Base<<(n-1) < p.Max {
				c = p.Base << (n - 1)
			}
			return c
		}
		check := func(n int, d time.Duration) {
			c := ceiling(n)
			lo := time.Duration(float64(c) * (1 - p.Jitter))
			if d < lo-1 || d > c { // a nanosecond of float rounding below
				t.Fatalf("%+v retry %d: wait %s outside [%s, %s]", p, n, d, lo, c)
			}
		}
		for range 200 {
			b := p.New()
			for n := 1; n <= 70; n++ {
				check(n, b.NextBackOff())
			}
		}
		for n := 1; n <= 70; n++ {
			c := ceiling(n)
			lo, hi := c, time.Duration(0)
			for range 500 {
				d := p.Delay(n)
				check(n, d)
				lo, hi = min(lo, d), max(hi, d)
			}
			mid := c - time.Duration(float64(c)*p.Jitter/2)
			if p.Jitter > 0 && (lo > mid || hi < mid) {
				t.Fatalf("%+v retry %d: 500 waits all in [%s, %s]: not jittered over [%s, %s]", p, n, lo, hi, c-time.Duration(float64(c)*p.Jitter), c)
			}
			if p.Jitter == 0 && (lo != c || hi != c) {
				t.Fatalf("%+v retry %d: waits in [%s, %s], want exactly %s", p, n, lo, hi, c)
			}
		}
	}
}

// TestSleepEndsWithTheContext: Sleep returns the context's error at once
// when it has ended, and nil after waiting nothing for a d of zero.
func TestSleepEndsWithTheContext(t *testing.T) {
	if err := Sleep(context.Background(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on an ended context = %v, want context.Canceled", err)
	}
}
