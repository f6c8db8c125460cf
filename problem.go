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

// NewProblem builds a problem whose type is ProblemBase+name.
func NewProblem(status int, name, title, detail string) *Problem {
	return &Problem{Type: ProblemBase + name, Title: title, Status: status, Detail: detail}
}

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
	return NewProblem(http.StatusUnprocessableEntity, "validation-failed", "Request body is invalid", detail)
}

// NotFound is the 404 problem of a resource the tenant cannot see.
func NotFound(what string) *Problem {
	return NewProblem(http.StatusNotFound, "not-found", "Not found", what+" does not exist")
}

// WriteProblem answers p: its status, the problem media type and its
// JSON body.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", ContentTypeProblem)
	w.WriteHeader(p.Status)
	_, _ = w.Write(p.Body())
}
