package client

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// ProblemBase prefixes the type URI of every idemgate problem.
const ProblemBase = "https://idemgate.dev/problems/"

// Kind names a type of idemgate problem (the part of its type URI after
// ProblemBase). A Kind is an error value to test with errors.Is:
//
//	if errors.Is(err, client.ErrKeyReused) { ... }
type Kind string

// Error names the kind; a Kind is only ever a target of errors.Is.
func (k Kind) Error() string { return "idemgate problem " + string(k) }

// The kinds of problem idemgate answers with: the server's
// idemgate.ProblemType values (and payments'), repeated here so that the
// SDK does not link the server's packages; a test holds them equal.
const (
	// ErrUnauthorized: 401, the API key is missing or unknown.
	ErrUnauthorized Kind = "unauthorized"
	// ErrKeyMissing: 400, the request had no Idempotency-Key.
	ErrKeyMissing Kind = "idempotency-key-missing"
	// ErrKeyMalformed: 400, the Idempotency-Key is not a valid key.
	ErrKeyMalformed Kind = "idempotency-key-malformed"
	// ErrMalformedJSON: 400, the body is not JSON.
	ErrMalformedJSON Kind = "malformed-json"
	// ErrValidation: 422, the body does not satisfy the operation's schema.
	ErrValidation Kind = "validation-failed"
	// ErrUnsupportedMediaType: 415, the body is not application/json.
	ErrUnsupportedMediaType Kind = "unsupported-media-type"
	// ErrBodyTooLarge: 413.
	ErrBodyTooLarge Kind = "body-too-large"
	// ErrKeyReused: 409 (or 422), the key was used before with another
	// request; nothing was done. Use a new key for a new request.
	ErrKeyReused Kind = "idempotency-key-reused"
	// ErrNotFound: 404; a read of something that does not exist, or the
	// recorded outcome of a refund of an unknown payment.
	ErrNotFound Kind = "not-found"
	// ErrUnavailable: 503, the server could not reach its database;
	// nothing was recorded (the SDK retries it).
	ErrUnavailable Kind = "unavailable"
	// ErrProcessingFailed: 500, recorded: the command could never be
	// applied and was dead-lettered (an operator may redrive it).
	ErrProcessingFailed Kind = "processing-failed"
	// ErrUpstreamFailed: 502, recorded: a gateway route's upstream kept
	// failing.
	ErrUpstreamFailed Kind = "upstream-failed"
	// ErrPaymentDeclined: 402, recorded outcome of payments.create.
	ErrPaymentDeclined Kind = "payment-declined"
	// ErrRefundExceedsPayment: 422, recorded outcome of refunds.create.
	ErrRefundExceedsPayment Kind = "refund-exceeds-payment"
)

// Problem is an RFC 9457 problem detail: the error of every final answer
// of status 400 or more. An answer that is not application/problem+json
// (say, a gateway upstream's own 400) becomes a Problem of type
// "about:blank" with the status and its standard title; its body is in
// Result.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Result is the whole answer (headers, raw body, replayed or not, the
	// operation id), never nil for a Problem returned by the SDK.
	Result *Result `json:"-"`
}

// Error reads like "402 Payment declined: payments above ... are declined".
func (p *Problem) Error() string {
	if p.Detail == "" {
		return fmt.Sprintf("%d %s", p.Status, p.Title)
	}
	return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
}

// Kind is the problem's idemgate kind, "" for a type from elsewhere.
func (p *Problem) Kind() Kind {
	if name, ok := strings.CutPrefix(p.Type, ProblemBase); ok {
		return Kind(name)
	}
	return ""
}

// Is makes errors.Is(err, client.ErrNotFound) and the like work.
func (p *Problem) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k != "" && p.Kind() == k
}

// Completed reports whether the problem is a command's recorded outcome
// (a declined payment, a dead-lettered command): the command is over and
// its key replays this answer. False for a rejection before the command
// was accepted, which recorded nothing.
func (p *Problem) Completed() bool { return p.Result != nil && p.Result.Completed }

// problemOf turns an answer of status >= 400 into its Problem.
func problemOf(r *Result) *Problem {
	p := &Problem{}
	if isProblemJSON(r.ContentType()) {
		_ = json.Unmarshal(r.Body, p) // a body that is not a problem keeps the fallback below
	}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	p.Status = r.StatusCode // the HTTP status is authoritative (RFC 9457 3.1.2)
	if p.Title == "" {
		p.Title = http.StatusText(r.StatusCode)
	}
	p.Result = r
	return p
}

func isProblemJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/problem+json"
}
