package client

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffIsFullJitterWithinBounds(t *testing.T) {
	p := RetryPolicy{BaseBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}
	for n := 1; n <= 70; n++ {
		ceiling := p.MaxBackoff
		if n <= 5 {
			ceiling = p.BaseBackoff << (n - 1) // 100ms, 200ms, ... 1.6s
		}
		var lo, hi time.Duration = ceiling, 0
		for range 2000 {
			d := p.backoff().Delay(n)
			if d < 0 || d > ceiling {
				t.Fatalf("retry %d: delay %s outside [0, %s]", n, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter spreads over the whole interval: 2000 uniform draws
		// all landing in one half would be a broken generator.
		if lo > ceiling/2 || hi < ceiling/2 {
			t.Fatalf("retry %d: 2000 delays all in [%s, %s] of [0, %s]: not jittered", n, lo, hi, ceiling)
		}
	}
}

// Retry-After is read by internal/retry.ParseAfter, tested there.

func TestRetryClassification(t *testing.T) {
	problem := func(status int, kind Kind, h ...string) *Result {
		r := &Result{StatusCode: status, Header: http.Header{"Content-Type": {"application/problem+json"}},
			Body: []byte(`{"type":"` + ProblemBase + string(kind) + `","title":"t","status":1}`)}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		r.Replayed = r.Header.Get("Idempotent-Replayed") == "true"
		return r
	}
	cases := []struct {
		name  string
		res   *Result
		retry bool
	}{
		{"503 unavailable", problem(503, ErrUnavailable), true},
		{"429", problem(429, "rate-limited"), true},
		{"502 from a proxy", &Result{StatusCode: 502, Header: http.Header{}}, true},
		{"504 from a proxy", &Result{StatusCode: 504, Header: http.Header{"Content-Type": {"text/html"}}}, true},
		{"502 upstream-failed", problem(502, ErrUpstreamFailed), false},
		{"502 upstream-failed replayed", problem(502, ErrUpstreamFailed, "Idempotent-Replayed", "true"), false},
		{"503 replayed", problem(503, ErrUnavailable, "Idempotent-Replayed", "true"), false},
		{"504 awaited", problem(504, "x", "Preference-Applied", "wait=5"), false},
		{"500 processing-failed", problem(500, ErrProcessingFailed), false},
		{"500", problem(500, "internal"), false},
		{"409", problem(409, ErrKeyReused), false},
		{"422", problem(422, ErrValidation), false},
		{"404", problem(404, ErrNotFound), false},
		{"202", &Result{StatusCode: 202, Header: http.Header{}}, false},
		{"201", &Result{StatusCode: 201, Header: http.Header{}}, false},
	}
	for _, tc := range cases {
		if got := retryable(tc.res); got != tc.retry {
			t.Errorf("%s: retryable %v, want %v", tc.name, got, tc.retry)
		}
	}
}

func TestConfig(t *testing.T) {
	c, err := New(Config{BaseURL: "http://127.0.0.1:8080/", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.cfg
	if cfg.Retry.MaxAttempts != DefaultMaxAttempts || cfg.Retry.MaxElapsed != DefaultMaxElapsed ||
		cfg.Retry.BaseBackoff != DefaultBaseBackoff || cfg.Retry.MaxBackoff != DefaultMaxBackoff ||
		cfg.Wait != DefaultWait || cfg.PollInterval != DefaultPollInterval || cfg.MaxAwait != DefaultMaxAwait ||
		cfg.AttemptTimeout != DefaultAttemptTimeout || cfg.HTTPClient == nil || cfg.Logger == nil || cfg.UserAgent == "" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	if c.base != "http://127.0.0.1:8080" {
		t.Fatalf("base %q", c.base)
	}
	bad := []Config{
		{APIKey: "k"},
		{BaseURL: "http://h"},
		{BaseURL: "127.0.0.1:8080", APIKey: "k"},
		{BaseURL: "ftp://h", APIKey: "k"},
		{BaseURL: "http://h", APIKey: "k", Wait: 31 * time.Second},
		{BaseURL: "http://h", APIKey: "k", Retry: RetryPolicy{MaxAttempts: -1}},
		{BaseURL: "http://h", APIKey: "k", Retry: RetryPolicy{BaseBackoff: time.Second, MaxBackoff: time.Millisecond}},
		{BaseURL: "http://h", APIKey: "k", PollInterval: -time.Second},
	}
	for _, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
