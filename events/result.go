package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/idemgate/idemgate"
)

// CommandCompleted is the body of a result event: a command's recorded
// response, for event-driven consumers.
type CommandCompleted struct {
	OperationID    string          `json:"operation_id"`
	Tenant         string          `json:"tenant"`
	Operation      string          `json:"operation"`
	IdempotencyKey string          `json:"idempotency_key"`
	Status         int             `json:"status"`
	ContentType    string          `json:"content_type"`
	Location       string          `json:"location,omitempty"`
	Body           json.RawMessage `json:"body"`
}

// Completed wraps a recorded response for the results topic. A body that
// is not JSON travels as a JSON string. The event id is the operation id:
// a relay that publishes the same outcome twice publishes one event.
func Completed(c CommandCompleted, resp idemgate.Response, recordedAt time.Time) (Envelope, error) {
	c.Status, c.ContentType, c.Location = resp.Status, resp.ContentType, resp.Location
	c.Body = resp.Body
	if !json.Valid(resp.Body) {
		c.Body, _ = json.Marshal(string(resp.Body)) // a string always encodes
	}
	data, err := json.Marshal(c)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: encode result: %w", err)
	}
	return Envelope{ID: c.OperationID, Type: TypeCommandCompleted, Source: Source, Subject: c.Operation,
		Time: recordedAt, ContentType: ContentTypeJSON, Data: data}, nil
}
