package idemgate

import "time"

// Response is a command's recorded outcome: written by the applier,
// stored in the outbox, published by the relay and replayed byte for byte
// to every retry.
type Response struct {
	Status      int
	ContentType string
	Location    string
	Body        []byte
}

// ProblemResponse records a problem as a command's outcome: a business
// failure (a declined payment, a refund too large) completes the command,
// and its retries get the same problem.
func ProblemResponse(p *Problem) Response {
	return Response{Status: p.Status, ContentType: ContentTypeProblem, Body: p.Body()}
}

// FormatTime spells a timestamp the way every idemgate body does: UTC,
// microseconds (what SQL keeps), RFC 3339.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }
