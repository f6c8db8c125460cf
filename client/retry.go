package client

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff is the random delay before retry n (n >= 1): full jitter, a
// uniform draw in [0, min(max, base·2^(n-1))]. Spreading retries over the
// whole interval keeps many clients that failed together (a server
// restart) from coming back together.
func backoff(p RetryPolicy, n int) time.Duration {
	ceiling := p.MaxBackoff
	if n < 1 {
		n = 1
	}
	if n <= 62 {
		if c := p.BaseBackoff << (n - 1); c > 0 && c < ceiling && c>>(n-1) == p.BaseBackoff {
			ceiling = c
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// retryAfter reads a Retry-After header (RFC 9110 10.2.3): delta-seconds
// or an HTTP date. ok is false when the header is absent or unreadable.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// isRecorded reports whether an answer to a command is its recorded
// outcome: a replay (Idempotent-Replayed: true, except on a 202, which
// replays a pending state), an outcome the server waited for
// (Preference-Applied), a success, or a problem only a recorded outcome
// has (upstream-failed, processing-failed).
func isRecorded(r *Result) bool {
	switch {
	case r.Pending():
		return false
	case r.Replayed, r.Header.Get("Preference-Applied") != "":
		return true
	case r.StatusCode >= 200 && r.StatusCode < 300:
		return true
	case r.StatusCode >= 500 && isProblemJSON(r.ContentType()):
		k := problemOf(r).Kind()
		return k == ErrUpstreamFailed || k == ErrProcessingFailed
	}
	return false
}

// retryable reports whether an answer is a failure of the infrastructure
// that the same request may overcome: a 429, 502, 503 or 504 that is not
// a recorded outcome.
func retryable(r *Result) bool {
	switch r.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return !isRecorded(r)
	}
	return false
}
