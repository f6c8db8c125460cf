package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
)

// Result is one final HTTP answer, kept whole: the recorded outcome of a
// command (replayed byte for byte by the server), a rejection, or, with
// CallOptions.NoAwait, the 202 of a pending command.
type Result struct {
	// StatusCode is the HTTP status, e.g. 201, 402, 202.
	StatusCode int
	// Header holds the answer's headers (Location, Content-Type, ...).
	Header http.Header
	// Body is the raw body, exactly as received.
	Body []byte
	// Replayed is true when the server said Idempotent-Replayed: true,
	// i.e. the key had been seen before (a retry, this call's or not).
	Replayed bool
	// Completed is true when this answer is the command's recorded
	// outcome: the command was applied and every retry with its key gets
	// these bytes again. False for a rejection before the command was
	// accepted (nothing recorded, the key is still free) and for a 202.
	Completed bool
	// OperationID identifies the command (GET /v1/operations/{id}). The
	// server reveals it in a 202 (and a payment in its body); it is empty
	// for an outcome replayed at a call's first attempt without either.
	OperationID string
	// IdempotencyKey is the key the command was sent with (for a read,
	// empty).
	IdempotencyKey string
}

// Location is the Location header: the created resource of a 201, or the
// operation of a 202.
func (r *Result) Location() string { return r.Header.Get("Location") }

// ContentType is the Content-Type header.
func (r *Result) ContentType() string { return r.Header.Get("Content-Type") }

// Pending reports a 202: the command is accepted, its outcome not yet
// recorded.
func (r *Result) Pending() bool { return r.StatusCode == http.StatusAccepted }

// Decode unmarshals the JSON body into v.
func (r *Result) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("idemgate client: decode %d answer: %w", r.StatusCode, err)
	}
	return nil
}

// pendingOperationID reads the operation id of a 202: its body's
// operation_id, else the last segment of its Location.
func pendingOperationID(r *Result) string {
	var v struct {
		OperationID string `json:"operation_id"`
	}
	if json.Unmarshal(r.Body, &v) == nil && v.OperationID != "" {
		return v.OperationID
	}
	if loc := r.Location(); strings.Contains(loc, "/operations/") {
		return path.Base(loc)
	}
	return ""
}
