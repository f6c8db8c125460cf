// Package idemgate holds the domain types shared by the command side (the
// HTTP API, which validates and claims commands) and the projectors (which
// apply them): the operations of the reference payments service and the
// normalised requests that travel inside command events.
package idemgate

import "time"

// Operation names; a key is scoped by tenant and operation.
const (
	OpCreatePayment = "payments.create"
	OpCreateRefund  = "refunds.create"
)

// MaxAmount is the largest amount accepted, in minor units: 2^53-1. Above
// it a JSON number no longer has one exact IEEE double, and RFC 8785
// canonical forms of two different amounts could coincide.
const MaxAmount = 1<<53 - 1

// CreatePayment is a validated payments.create request.
type CreatePayment struct {
	Amount      int64   `json:"amount"`
	Currency    string  `json:"currency"`
	Customer    string  `json:"customer"`
	Description *string `json:"description"`
}

// CreateRefund is a validated refunds.create request; the payment comes
// from the path.
type CreateRefund struct {
	Amount int64 `json:"amount"`
}

// FormatTime spells a timestamp the way every idemgate body does: UTC,
// microseconds (what SQL keeps), RFC 3339.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

// Payment is a payment as the API shows it: the 201 body of
// payments.create, and the read model's payment.
type Payment struct {
	ID             string  `json:"id"`
	OperationID    string  `json:"operation_id"`
	Status         string  `json:"status"`
	Amount         int64   `json:"amount"`
	Currency       string  `json:"currency"`
	Customer       string  `json:"customer"`
	Description    *string `json:"description"`
	RefundedAmount int64   `json:"refunded_amount"`
	CreatedAt      string  `json:"created_at"`
}

// Refund is a refund as the API shows it: the 201 body of refunds.create,
// and the read model's refund.
type Refund struct {
	ID        string `json:"id"`
	PaymentID string `json:"payment_id"`
	Amount    int64  `json:"amount"`
	Status    string `json:"status"`
	CreatedAt string `json:"created_at"`
}
