package idemgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ProblemBase prefixes every problem type URI.
const ProblemBase = "https://idemgate.dev/problems/"

// ContentTypeProblem is the media type of RFC 9457 problem details.
const ContentTypeProblem = "application/problem+json"

// ProblemType names a kind of problem: the part of its type URI after
// ProblemBase. The strings are part of the HTTP contract (openapi.json
// lists them, the Go SDK's client.Kind values match them): never rename
// one. A module may declare types of its own (payments does), as
// ProblemType constants in its package.
type ProblemType string

// URI is the problem type's full URI: ProblemBase followed by its name.
func (t ProblemType) URI() string { return ProblemBase + string(t) }

// The problem types idemgate itself answers with.
const (
	// ProblemUnauthorized: 401, the API key is missing, unknown, or sent
	// twice.
	ProblemUnauthorized ProblemType = "unauthorized"
	// ProblemKeyMissing: 400, a POST without an Idempotency-Key.
	ProblemKeyMissing ProblemType = "idempotency-key-missing"
	// ProblemKeyMalformed: 400, an Idempotency-Key that is not a valid key.
	ProblemKeyMalformed ProblemType = "idempotency-key-malformed"
	// ProblemUnsupportedMediaType: 415, a body that is not application/json
	// or that has a Content-Encoding.
	ProblemUnsupportedMediaType ProblemType = "unsupported-media-type"
	// ProblemMalformedJSON: 400, a body that is not JSON.
	ProblemMalformedJSON ProblemType = "malformed-json"
	// ProblemBodyTooLarge: 413, a body over the API's limit.
	ProblemBodyTooLarge ProblemType = "body-too-large"
	// ProblemValidationFailed: 422, a body that breaks its operation's
	// schema (see Invalid).
	ProblemValidationFailed ProblemType = "validation-failed"
	// ProblemKeyReused: 409 (or 422, IDEMGATE_MISMATCH_STATUS), a key
	// already used with a different request.
	ProblemKeyReused ProblemType = "idempotency-key-reused"
	// ProblemNotFound: 404, a resource the tenant cannot see (see NotFound).
	ProblemNotFound ProblemType = "not-found"
	// ProblemMethodNotAllowed: 405, a method the path does not offer; the
	// answer's Allow header lists those it does.
	ProblemMethodNotAllowed ProblemType = "method-not-allowed"
	// ProblemUnavailable: 503 with Retry-After, the database could not be
	// reached; nothing was recorded, so the same request may be retried.
	ProblemUnavailable ProblemType = "unavailable"
	// ProblemInternal: 500, an internal error before anything was recorded.
	ProblemInternal ProblemType = "internal"
	// ProblemNotReady: 503 from /readyz, a dependency the role needs does
	// not answer.
	ProblemNotReady ProblemType = "not-ready"
	// ProblemProcessingFailed: 500, a recorded outcome: the command could
	// never be applied and was dead-lettered (an operator may redrive it).
	ProblemProcessingFailed ProblemType = "processing-failed"
	// ProblemUpstreamFailed: 502, a recorded outcome: a gateway route's
	// upstream kept failing past the call's budget (dead-lettered too).
	ProblemUpstreamFailed ProblemType = "upstream-failed"
	// ProblemUpstreamAnswerNotKept: a recorded outcome with the upstream's
	// own status: its final answer's body was too large to keep, so the
	// answer is recorded without it. Not a failure.
	ProblemUpstreamAnswerNotKept ProblemType = "upstream-answer-not-kept"
)

// Problem is an RFC 9457 problem detail: the one error type idemgate
// answers with, whether at once (a 4xx before the claim) or as a recorded
// outcome (a declined payment, replayed like a success).
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// NewProblem builds a problem of type typ (its URI, typ.URI()).
func NewProblem(status int, typ ProblemType, title, detail string) *Problem {
	return &Problem{Type: typ.URI(), Title: title, Status: status, Detail: detail}
}

// OfType reports whether the problem is of type typ.
func (p *Problem) OfType(typ ProblemType) bool { return p != nil && p.Type == typ.URI() }

// Body is the problem's JSON encoding.
func (p *Problem) Body() []byte {
	b, _ := json.Marshal(p) // a struct of strings and an int always encodes
	return b
}

// ErrPermanent marks a command that can never be applied as it is (its
// request cannot be read, say): it is dead-lettered after bounded
// attempts instead of being retried for ever. Appliers wrap it.
var ErrPermanent = errors.New("idemgate: command cannot be applied")

// Invalid is the 422 problem of a body that breaks its operation's
// schema; validation returns it, and it consumes no key.
func Invalid(detail string) *Problem {
	return NewProblem(http.StatusUnprocessableEntity, ProblemValidationFailed, "Request body is invalid", detail)
}

// NotFound is the 404 problem of a resource the tenant cannot see.
func NotFound(what string) *Problem {
	return NewProblem(http.StatusNotFound, ProblemNotFound, "Not found", what+" does not exist")
}

// WriteProblem answers p: its status, the problem media type and its
// JSON body.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", ContentTypeProblem)
	w.WriteHeader(p.Status)
	_, _ = w.Write(p.Body())
}
