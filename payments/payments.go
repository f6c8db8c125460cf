// Package payments is idemgate's reference plug-in: the payments.create
// and refunds.create operations, their read model and its tables. It
// registers itself like any user's module would, through
// idemgate.Module; no core package imports it.
package payments

import (
	"embed"
	"io/fs"
	"time"

	"github.com/idemgate/idemgate"
)

// Operation names; a key is scoped by tenant and operation.
const (
	OpCreatePayment = "payments.create"
	OpCreateRefund  = "refunds.create"
)

// The problem types of the module's recorded outcomes.
const (
	// ProblemPaymentDeclined: 402, a payment above DeclineAbove.
	ProblemPaymentDeclined idemgate.ProblemType = "payment-declined"
	// ProblemRefundExceedsPayment: 422, a refund of more than the payment
	// has left to refund.
	ProblemRefundExceedsPayment idemgate.ProblemType = "refund-exceeds-payment"
)

// MaxAmount is the largest amount accepted, in minor units: 2^53-1. Above
// it a JSON number no longer has one exact IEEE double, and RFC 8785
// canonical forms of two different amounts could coincide.
const MaxAmount = 1<<53 - 1

// DeclineAbove is the demo rule: a payment of a larger amount is declined.
const DeclineAbove = 1_000_000

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed openapi.json
var openAPI []byte

// Config tunes the module; the zero value is the reference service.
type Config struct {
	// Now stamps created_at; default time.Now. Tests fix it.
	Now func() time.Time
}

// Module returns the payments module: its two operations, its reads, its
// tables and its part of the OpenAPI document.
func Module(cfg Config) idemgate.Module {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sub, _ := fs.Sub(migrations, "migrations") // a constant, valid path
	return idemgate.Module{
		Name: "payments",
		Operations: []idemgate.Operation{
			{
				Name:     OpCreatePayment,
				Path:     "/v1/payments",
				Validate: ValidateCreatePayment,
				Apply:    createPayment{now: cfg.Now},
			},
			{
				Name:     OpCreateRefund,
				Path:     "/v1/payments/{paymentID}/refunds",
				Target:   refundTarget,
				Validate: ValidateCreateRefund,
				Apply:    createRefund{now: cfg.Now},
			},
		},
		Reads: []idemgate.Read{
			{Path: "/v1/payments/{paymentID}", Handle: readPayment},
			{Path: "/v1/payments/{paymentID}/refunds/{refundID}", Handle: readRefund},
		},
		Migrations: sub,
		OpenAPI:    openAPI,
	}
}

// CreatePayment is a validated payments.create request, as its command
// event carries it.
type CreatePayment struct {
	Amount      int64   `json:"amount"`
	Currency    string  `json:"currency"`
	Customer    string  `json:"customer"`
	Description *string `json:"description"`
}

// CreateRefund is a validated refunds.create request; the payment comes
// from the path (the command's target).
type CreateRefund struct {
	Amount int64 `json:"amount"`
}

// Payment is a payment as the API shows it: the 201 body of
// payments.create.
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

// PaymentWithRefunds is the read model of a payment.
type PaymentWithRefunds struct {
	Payment
	Refunds []Refund `json:"refunds"`
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
