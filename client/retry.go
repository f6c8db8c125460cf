package client

import (
	"net/http"

	"github.com/idemgate/idemgate/internal/retry"
)

// backoff is the policy of the random delay before retry n (n >= 1):
// full jitter, a uniform draw in [0, min(MaxBackoff, BaseBackoff·2^(n-1))].
// Spreading retries over the whole interval keeps many clients that
// failed together (a server restart) from coming back together.
func (p RetryPolicy) backoff() retry.Policy {
	return retry.Policy{Base: p.BaseBackoff, Max: p.MaxBackoff, Jitter: 1}
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
