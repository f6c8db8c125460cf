package projector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
)

// DeclineAbove is the demo rule: a payment of a larger amount is declined.
const DeclineAbove = 1_000_000

// paymentIDSpace derives a payment's id from its operation's id, so that
// a retried transaction computes the same payment.
var paymentIDSpace = uuid.MustParse("6f1c1f0e-8a43-4d3e-9d0a-6a1c8e1d2b7f")

// PaymentID is the id of the payment an operation creates.
func PaymentID(operationID string) string {
	return uuid.NewSHA1(paymentIDSpace, []byte(operationID)).String()
}

// CreatePayment applies payments.create to the payments read model.
type CreatePayment struct {
	// Now stamps created_at; default time.Now.
	Now func() time.Time
}

// Apply implements Applier.
func (a CreatePayment) Apply(ctx context.Context, tx pgx.Tx, cmd events.CommandAccepted) (Outcome, error) {
	var req idemgate.CreatePayment
	if err := json.Unmarshal(cmd.Request, &req); err != nil {
		return Outcome{}, fmt.Errorf("%w: the command's request could not be read", ErrPermanent)
	}
	if req.Amount > DeclineAbove {
		return ProblemOutcome(idemgate.NewProblem(http.StatusPaymentRequired, "payment-declined", "Payment declined",
			fmt.Sprintf("payments above %d minor units are declined", DeclineAbove))), nil
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	created := now().UTC().Truncate(time.Microsecond)
	p := idemgate.Payment{
		ID:          PaymentID(cmd.OperationID),
		OperationID: cmd.OperationID,
		Status:      "succeeded",
		Amount:      req.Amount,
		Currency:    req.Currency,
		Customer:    req.Customer,
		Description: req.Description,
		CreatedAt:   idemgate.FormatTime(created),
	}
	if _, err := tx.Exec(ctx, `INSERT INTO payments
    (payment_id, tenant_id, operation_id, amount, currency, customer, description, status, refunded_amount, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9) ON CONFLICT (payment_id) DO NOTHING`,
		p.ID, cmd.Tenant, p.OperationID, p.Amount, p.Currency, p.Customer, p.Description, p.Status, created); err != nil {
		return Outcome{}, fmt.Errorf("insert payment: %w", err)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return Outcome{}, fmt.Errorf("encode payment: %w", err)
	}
	return Outcome{Status: http.StatusCreated, ContentType: "application/json", Location: "/v1/payments/" + p.ID, Body: body}, nil
}
