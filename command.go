package idemgate

import (
	"encoding/json"
	"time"
)

// Command is an accepted request: everything the applier needs, carried by
// the command event. It is built from the claim row alone, so the API and
// the sweeper emit identical events.
type Command struct {
	OperationID    string          `json:"operation_id"`
	Tenant         string          `json:"tenant"`
	Operation      string          `json:"operation"`
	IdempotencyKey string          `json:"idempotency_key"`
	Target         string          `json:"target,omitempty"` // from the path parameters, e.g. the payment of a refund
	Request        json.RawMessage `json:"request"`          // what the operation's Validate returned
	AcceptedAt     time.Time       `json:"accepted_at"`
	// TraceParent is the W3C traceparent the client sent, if any. It
	// travels beside the event (a record header), not in its body.
	TraceParent string `json:"-"`
}

// Claim states. A claim is ACCEPTED when its key is taken (its event may
// not be in Kafka yet), PUBLISHED once Kafka acknowledged the event, and
// COMPLETED once its response is recorded; COMPLETED is final. The store
// derives them: PUBLISHED from the published mark, COMPLETED from the
// recorded response, so that no writer updates another's row.
const (
	StateAccepted  = "ACCEPTED"
	StatePublished = "PUBLISHED"
	StateCompleted = "COMPLETED"
)

// ClaimRequest asks to claim (tenant, operation, key) for one request.
type ClaimRequest struct {
	Tenant      string
	Operation   string
	Key         string
	Target      string
	Fingerprint []byte
	Request     json.RawMessage
	Retention   time.Duration
	TraceParent string
}

// Claim is what the claim transaction found or made for a key.
type Claim struct {
	// Inserted: this request made the claim, and its event must be emitted.
	Inserted    bool
	OperationID string
	Fingerprint []byte
	AcceptedAt  time.Time
	// Response is the recorded response once the command is COMPLETED.
	Response *Response
	// OutcomeUnknown: the command is not completed and its upstream call
	// is quarantined as outcome unknown (its attempts kept ending without
	// an outcome); nothing is stored until an operator redrives it.
	OutcomeUnknown bool
}
