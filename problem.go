package idemgate

import (
	"encoding/json"
	"fmt"
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
