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

// ClaimState is where a claim stands. A claim is accepted when its key is
// taken (its event may not be in Kafka yet), published once Kafka
// acknowledged its event, and completed once its response is recorded;
// completed is final. A claim whose upstream call is quarantined is
// outcome_unknown until an operator redrives it. The states are not
// stored: the store derives them from the rows that exist for the claim
// (docs/ARCHITECTURE.md, "Claim states"), so that no writer updates
// another's row.
//
// Its value is its spelling everywhere: the key lookup's "state", the
// output and filter of `idemgate list`, the docs. A client is shown the
// coarser Status.
type ClaimState string

// The claim states.
const (
	ClaimAccepted       ClaimState = "accepted"
	ClaimPublished      ClaimState = "published"
	ClaimOutcomeUnknown ClaimState = "outcome_unknown"
	ClaimCompleted      ClaimState = "completed"
)

// ClaimPending is no state of its own: any claim not completed (accepted,
// published or outcome_unknown). It is what the claim transaction knows
// of a claim without a response that is not quarantined (it does not
// read whether Kafka acknowledged the event), and what `idemgate list`
// lists by default.
const ClaimPending ClaimState = "pending"

// Status is the state as a client is shown it, in a 202's body and by
// GET /v1/operations/{id}: "pending" for accepted and published (a client
// does the same for both: wait), the state's own spelling otherwise.
func (s ClaimState) Status() string {
	if s == ClaimAccepted || s == ClaimPublished {
		return string(ClaimPending)
	}
	return string(s)
}

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
	// Response is the recorded response once the claim is completed.
	Response *Response
	// OutcomeUnknown: the command is not completed and its upstream call
	// is quarantined as outcome unknown (its attempts kept ending without
	// an outcome); nothing is stored until an operator redrives it.
	OutcomeUnknown bool
}

// State is what the claim transaction knows of the claim's state:
// completed with its response, outcome_unknown when its call is
// quarantined, accepted when this request inserted it, and otherwise
// ClaimPending (accepted or published: the transaction does not read
// whether Kafka acknowledged the event).
func (c Claim) State() ClaimState {
	switch {
	case c.Response != nil:
		return ClaimCompleted
	case c.OutcomeUnknown:
		return ClaimOutcomeUnknown
	case c.Inserted:
		return ClaimAccepted
	}
	return ClaimPending
}
