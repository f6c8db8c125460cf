package client

import (
	"fmt"
	"time"
)

// Reason is why a call ended without a final answer; test with errors.Is.
type Reason string

// Error spells the reason.
func (r Reason) Error() string { return string(r) }

const (
	// ErrRetriesExhausted: every attempt the retry policy allowed failed
	// with a retryable failure (the last one is wrapped too).
	ErrRetriesExhausted Reason = "idemgate client: retries exhausted"
	// ErrStillPending: the command was accepted but no outcome was
	// recorded within Config.MaxAwait.
	ErrStillPending Reason = "idemgate client: command still pending"
	// ErrOutcomeUnknown: the command was accepted, but the server could
	// not learn whether its upstream applied it (the attempts kept dying)
	// and set it aside for an operator, who resolves it with a redrive.
	// It is not a failure: do not send it again under a new key, which
	// could apply it twice. Calling again later with the same key and body
	// gets the outcome once it is resolved.
	ErrOutcomeUnknown Reason = "idemgate client: outcome unknown until an operator resolves it"
)

// RetryError says that a request failed on every attempt its retry policy
// allowed. errors.Is(err, ErrRetriesExhausted) holds, and Last (a transport
// error or a *Problem such as 503 unavailable) is unwrapped too.
type RetryError struct {
	Attempts int
	Elapsed  time.Duration
	Last     error
}

// Error reads "idemgate client: retries exhausted after 10 attempts in 58s: ...".
func (e *RetryError) Error() string {
	return fmt.Sprintf("%s after %d attempts in %s: %v", ErrRetriesExhausted, e.Attempts, e.Elapsed.Round(time.Millisecond), e.Last)
}

// Unwrap exposes ErrRetriesExhausted and the last failure.
func (e *RetryError) Unwrap() []error { return []error{ErrRetriesExhausted, e.Last} }

// IncompleteError is the error of a command call that got no final answer:
// the retries ran out, the context ended, or the outcome did not arrive
// within MaxAwait. The command may have been accepted (OperationID is then
// known) or not; calling again with IdempotencyKey and the same body is
// safe either way and resumes the same command.
type IncompleteError struct {
	// IdempotencyKey is the key the call used (the generated one too).
	IdempotencyKey string
	// OperationID is set once the server answered 202: the command is
	// accepted and will complete.
	OperationID string
	// Err is the cause: a *RetryError, the context's error,
	// ErrStillPending or ErrOutcomeUnknown.
	Err error
}

// Error names the key to retry with.
func (e *IncompleteError) Error() string {
	if e.OperationID != "" {
		return fmt.Sprintf("idemgate client: command %s (Idempotency-Key %q) accepted, outcome not known: %v", e.OperationID, e.IdempotencyKey, e.Err)
	}
	return fmt.Sprintf("idemgate client: outcome of Idempotency-Key %q not known; retry with the same key and body: %v", e.IdempotencyKey, e.Err)
}

// Unwrap exposes the cause.
func (e *IncompleteError) Unwrap() error { return e.Err }
