package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/idemgate/idemgate"
)

// completedBody is the body of a result event: a command's recorded
// response, for event-driven consumers.
type completedBody struct {
	OperationID    string          `json:"operation_id"`
	Tenant         string          `json:"tenant"`
	Operation      string          `json:"operation"`
	IdempotencyKey string          `json:"idempotency_key"`
	Status         int             `json:"status"`
	ContentType    string          `json:"content_type"`
	Location       string          `json:"location,omitempty"`
	Body           json.RawMessage `json:"body"`
}

// CommandCompleted wraps cmd's recorded response for the results topic;
// of cmd it carries the operation id, tenant, operation and key. A body
// that is not JSON travels as a JSON string. The event id names the
// command and the moment its response was recorded
// ("<operation id>:completed:<unix microseconds>"): distinct from the
// command event's id (the operation id), the same when a relay publishes
// one response twice, and new when a redriven command records another.
func CommandCompleted(cmd idemgate.Command, resp idemgate.Response, recordedAt time.Time) (Envelope, error) {
	c := completedBody{OperationID: cmd.OperationID, Tenant: cmd.Tenant, Operation: cmd.Operation, IdempotencyKey: cmd.IdempotencyKey,
		Status: resp.Status, ContentType: resp.ContentType, Location: resp.Location, Body: resp.Body}
	if !json.Valid(resp.Body) {
		c.Body, _ = json.Marshal(string(resp.Body)) // a string always encodes
	}
	data, err := json.Marshal(c)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: encode result: %w", err)
	}
	return Envelope{ID: CompletedID(c.OperationID, recordedAt), Type: TypeCommandCompleted, Source: Source, Subject: c.Operation,
		Time: recordedAt, ContentType: ContentTypeJSON, Data: data}, nil
}

// CompletedID is the event id of the response recorded for operationID
// at recordedAt.
func CompletedID(operationID string, recordedAt time.Time) string {
	return operationID + ":completed:" + strconv.FormatInt(recordedAt.UnixMicro(), 10)
}
