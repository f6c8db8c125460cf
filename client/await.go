package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/idemgate/idemgate/internal/retry"
)

// Operation is the state of a command as GET /v1/operations/{id} shows
// it.
type Operation struct {
	OperationID string `json:"operation_id"`
	// Status is "pending", "outcome_unknown" (set aside until an
	// operator redrives it: see ErrOutcomeUnknown) or "completed".
	Status string `json:"status"`
	// Response is the recorded outcome, once completed.
	Response *OperationResponse `json:"response,omitempty"`
}

// OperationResponse is a recorded outcome as the operation shows it.
type OperationResponse struct {
	// Status is the outcome's HTTP status, e.g. 201 or 402.
	Status int `json:"status"`
	// Body is the outcome's body, as the server embeds it.
	Body json.RawMessage `json:"body"`
}

// Completed reports whether the command has its recorded outcome.
func (o *Operation) Completed() bool { return o.Status == "completed" && o.Response != nil }

// OutcomeUnknown reports whether the command is set aside as outcome
// unknown: nothing will be recorded until an operator redrives it.
func (o *Operation) OutcomeUnknown() bool { return o.Status == "outcome_unknown" }

// Operation reads the state of a command (GET /v1/operations/{id}).
func (c *Client) Operation(ctx context.Context, operationID string) (*Operation, error) {
	op, _, err := c.operationAt(ctx, "/v1/operations/"+url.PathEscape(operationID))
	return op, err
}

// operationAt reads the operation at a Location; the answer comes too,
// for its Retry-After.
func (c *Client) operationAt(ctx context.Context, location string) (*Operation, *Result, error) {
	res, err := c.get(ctx, location)
	if err != nil {
		return nil, nil, err
	}
	var op Operation
	if err := res.Decode(&op); err != nil {
		return nil, nil, err
	}
	return &op, res, nil
}

// await waits for the outcome of a command answered 202. It polls the
// operation the 202 pointed to, each time after the Retry-After of the
// last answer (else PollInterval), and once the operation is completed it
// sends the command once more: the server replays the recorded answer
// with its headers (Location, Content-Type), byte for byte.
func (c *Client) await(ctx context.Context, cmd *command, pending *Result) (*Result, error) {
	opID := pending.OperationID
	incomplete := func(err error) error {
		return &IncompleteError{IdempotencyKey: cmd.key, OperationID: opID, Err: err}
	}
	location := pending.Location()
	if location == "" && opID != "" {
		location = "/v1/operations/" + url.PathEscape(opID)
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.MaxAwait)
	defer cancel()
	// stopped names why the wait ended: the caller's context, or MaxAwait.
	stopped := func(err error) error {
		if ctx.Err() != nil {
			return incomplete(ctx.Err())
		}
		if actx.Err() != nil {
			return incomplete(fmt.Errorf("%w after %s", ErrStillPending, c.cfg.MaxAwait))
		}
		return incomplete(err)
	}
	delay := c.pollDelay(pending)
	for {
		if err := c.pause(actx, delay); err != nil {
			return nil, stopped(err)
		}
		if location != "" {
			op, res, err := c.operationAt(actx, location)
			if err != nil {
				return nil, stopped(err)
			}
			if op.OutcomeUnknown() {
				return nil, incomplete(ErrOutcomeUnknown)
			}
			if !op.Completed() {
				delay = c.pollDelay(res)
				continue
			}
		}
		res, err := c.send(actx, cmd)
		if err != nil {
			return nil, stopped(err)
		}
		if res.OperationID == "" {
			res.OperationID = opID
		}
		if !res.Pending() {
			return res, nil
		}
		if res.OperationID != "" {
			opID = res.OperationID
		}
		delay = c.pollDelay(res)
	}
}

// pollDelay is how long to wait before asking again about a pending
// command: the server's Retry-After, else PollInterval.
func (c *Client) pollDelay(pending *Result) time.Duration {
	if d, ok := retry.ParseAfter(pending.Header.Get("Retry-After"), time.Now()); ok {
		return d
	}
	return c.cfg.PollInterval
}
