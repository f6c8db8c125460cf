package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// NewPayment is the body of POST /v1/payments.
type NewPayment struct {
	// Amount in minor units (cents), greater than 0.
	Amount int64 `json:"amount"`
	// Currency is an ISO 4217 code, e.g. "EUR".
	Currency string `json:"currency"`
	// Customer identifies the payer (1 to 64 characters).
	Customer string `json:"customer"`
	// Description is optional (up to 255 characters).
	Description string `json:"description,omitempty"`
}

// NewRefund is the body of POST /v1/payments/{id}/refunds.
type NewRefund struct {
	// Amount in minor units, greater than 0.
	Amount int64 `json:"amount"`
}

// Payment is a payment: the 201 outcome of CreatePayment and what
// GetPayment reads.
type Payment struct {
	ID             string    `json:"id"`
	OperationID    string    `json:"operation_id"`
	Status         string    `json:"status"`
	Amount         int64     `json:"amount"`
	Currency       string    `json:"currency"`
	Customer       string    `json:"customer"`
	Description    string    `json:"description"`
	RefundedAmount int64     `json:"refunded_amount"`
	CreatedAt      time.Time `json:"created_at"`
	// Refunds lists the payment's refunds; only GetPayment fills it.
	Refunds []Refund `json:"refunds,omitempty"`
}

// Refund is a refund: the 201 outcome of CreateRefund and what GetRefund
// reads.
type Refund struct {
	ID        string    `json:"id"`
	PaymentID string    `json:"payment_id"`
	Amount    int64     `json:"amount"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// CreatePayment creates a payment (payments.create) and waits for its
// outcome. The Result is the outcome's whole answer (nil only with an
// *IncompleteError). A declined payment is a recorded outcome returned as
// a *Problem: errors.Is(err, ErrPaymentDeclined). With
// CallOptions.NoAwait, a pending command returns no Payment and no error:
// Result.Pending() holds.
func (c *Client) CreatePayment(ctx context.Context, p NewPayment, opts CallOptions) (*Payment, *Result, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, nil, fmt.Errorf("idemgate client: encode payment: %w", err)
	}
	res, err := c.Call(ctx, "/v1/payments", body, opts)
	pay, err := decodeOutcome[Payment](res, err)
	if pay != nil && res.OperationID == "" {
		res.OperationID = pay.OperationID
	}
	return pay, res, err
}

// CreateRefund refunds part of a payment (refunds.create) and waits for
// its outcome. Recorded outcomes other than 201 come back as a *Problem:
// ErrRefundExceedsPayment, or ErrNotFound for an unknown payment.
func (c *Client) CreateRefund(ctx context.Context, paymentID string, r NewRefund, opts CallOptions) (*Refund, *Result, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, nil, fmt.Errorf("idemgate client: encode refund: %w", err)
	}
	res, err := c.Call(ctx, "/v1/payments/"+url.PathEscape(paymentID)+"/refunds", body, opts)
	ref, err := decodeOutcome[Refund](res, err)
	return ref, res, err
}

// GetPayment reads a payment and its refunds; ErrNotFound if there is none.
func (c *Client) GetPayment(ctx context.Context, id string) (*Payment, error) {
	res, err := c.get(ctx, "/v1/payments/"+url.PathEscape(id))
	p, err := decodeOutcome[Payment](res, err)
	return p, err
}

// GetRefund reads one refund of a payment; ErrNotFound if there is none.
func (c *Client) GetRefund(ctx context.Context, paymentID, refundID string) (*Refund, error) {
	res, err := c.get(ctx, "/v1/payments/"+url.PathEscape(paymentID)+"/refunds/"+url.PathEscape(refundID))
	r, err := decodeOutcome[Refund](res, err)
	return r, err
}

// decodeOutcome decodes a successful answer into a T; an error, a pending
// (NoAwait) or an empty answer leaves the T nil.
func decodeOutcome[T any](res *Result, err error) (*T, error) {
	if err != nil || res == nil || res.StatusCode < 200 || res.StatusCode >= 300 || res.Pending() {
		return nil, err
	}
	var v T
	if err := res.Decode(&v); err != nil {
		return nil, err
	}
	return &v, nil
}
