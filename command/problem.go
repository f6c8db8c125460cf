package command

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/internal/retry"
)

// Problem is idemgate's RFC 9457 problem; handlers return it as an error
// and writeError is the one place that turns errors into HTTP answers.
type Problem = idemgate.Problem

// NewProblem builds a problem; see idemgate.NewProblem.
func NewProblem(status int, typ idemgate.ProblemType, title, detail string) *Problem {
	return idemgate.NewProblem(status, typ, title, detail)
}

// retryIn is the Retry-After the API sends: with a 202 (poll the pending
// operation again) and a 503 (the database is unreachable; send the same
// request again). A second is short against a client's patience and long
// against a command's usual pipeline time (tens of milliseconds).
const retryIn = time.Second

// The problems of the HTTP contract.
func errUnauthorized() *Problem {
	return NewProblem(http.StatusUnauthorized, idemgate.ProblemUnauthorized, "Unauthorized",
		"send 'Authorization: Bearer <api key>' with a known API key")
}

func errKeyMissing() *Problem {
	return NewProblem(http.StatusBadRequest, idemgate.ProblemKeyMissing, "Idempotency-Key missing",
		"every POST needs an Idempotency-Key header")
}

func errKeyMalformed(detail string) *Problem {
	return NewProblem(http.StatusBadRequest, idemgate.ProblemKeyMalformed, "Idempotency-Key malformed", detail)
}

func errUnsupportedMediaType(got string) *Problem {
	return NewProblem(http.StatusUnsupportedMediaType, idemgate.ProblemUnsupportedMediaType, "Unsupported media type",
		fmt.Sprintf("the body must be application/json, not %q", got))
}

func errUnsupportedEncoding(enc string) *Problem {
	return NewProblem(http.StatusUnsupportedMediaType, idemgate.ProblemUnsupportedMediaType, "Unsupported content encoding",
		fmt.Sprintf("the body must not be encoded (Content-Encoding %q is not supported); send it as is", enc))
}

func errMalformedJSON(detail string) *Problem {
	return NewProblem(http.StatusBadRequest, idemgate.ProblemMalformedJSON, "Malformed JSON", detail)
}

func errTooLarge(limit int64) *Problem {
	return NewProblem(http.StatusRequestEntityTooLarge, idemgate.ProblemBodyTooLarge, "Request body too large",
		fmt.Sprintf("the body must not exceed %d bytes", limit))
}

func errKeyReused(status int) *Problem {
	return NewProblem(status, idemgate.ProblemKeyReused, "Idempotency-Key reused",
		"this Idempotency-Key was already used with a different request; use a new key for a new request")
}

func errUnavailable() *Problem {
	return NewProblem(http.StatusServiceUnavailable, idemgate.ProblemUnavailable, "Service unavailable",
		"the database could not be reached; retry with the same Idempotency-Key")
}

func errInternal() *Problem {
	return NewProblem(http.StatusInternalServerError, idemgate.ProblemInternal, "Internal error",
		"an internal error occurred; retry with the same Idempotency-Key")
}

// errorLog receives request failures: a *logging.Throttle, so that an
// outage, which fails every request, logs a few lines a minute rather
// than one per request.
type errorLog interface {
	Error(msg string, args ...any)
}

// writeError answers err as a problem. Anything that is not a *Problem is
// an internal fault: it is logged and answered 503 (retry safely), since
// nothing was recorded for the client's request.
func writeError(w http.ResponseWriter, r *http.Request, logger errorLog, err error) {
	var p *Problem
	if !errors.As(err, &p) {
		logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		p = errUnavailable()
		retry.SetAfter(w.Header(), retryIn)
	}
	writeProblem(w, p)
}

// writeProblem answers p as a problem (see idemgate.WriteProblem).
var writeProblem = idemgate.WriteProblem
