package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
)

// refundIDSpace derives a refund's id from its operation's id.
var refundIDSpace = uuid.MustParse("0b8e3c5a-2d7f-4f61-b1c9-3e5a7d9f1a2c")

// CreateRefund applies refunds.create: it refunds part of a payment of
// the same tenant, never more than the payment's amount in total.
type CreateRefund struct {
	// Now stamps created_at; default time.Now.
	Now func() time.Time
}

// Apply implements Applier.
func (a CreateRefund) Apply(ctx context.Context, tx pgx.Tx, cmd events.CommandAccepted) (Outcome, error) {
	var req idemgate.CreateRefund
	if err := json.Unmarshal(cmd.Request, &req); err != nil || req.Amount <= 0 {
		return Outcome{}, fmt.Errorf("%w: the command's request could not be read", ErrPermanent)
	}
	if uuid.Validate(cmd.Target) != nil {
		return paymentNotFound(cmd.Target), nil
	}
	var amount, refunded int64
	err := tx.QueryRow(ctx, `SELECT amount, refunded_amount FROM payments WHERE payment_id = $1 AND tenant_id = $2`,
		cmd.Target, cmd.Tenant).Scan(&amount, &refunded)
	if errors.Is(err, pgx.ErrNoRows) {
		return paymentNotFound(cmd.Target), nil
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("read payment: %w", err)
	}
	if refunded+req.Amount > amount {
		return ProblemOutcome(idemgate.NewProblem(http.StatusUnprocessableEntity, "refund-exceeds-payment", "Refund exceeds payment",
			fmt.Sprintf("payment %s has %d of %d minor units left to refund; %d were asked", cmd.Target, amount-refunded, amount, req.Amount))), nil
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	created := now().UTC().Truncate(time.Microsecond)
	r := idemgate.Refund{
		ID:        uuid.NewSHA1(refundIDSpace, []byte(cmd.OperationID)).String(),
		PaymentID: cmd.Target,
		Amount:    req.Amount,
		Status:    "succeeded",
		CreatedAt: idemgate.FormatTime(created),
	}
	if _, err := tx.Exec(ctx, `UPDATE payments SET refunded_amount = refunded_amount + $1 WHERE payment_id = $2 AND tenant_id = $3`,
		req.Amount, cmd.Target, cmd.Tenant); err != nil {
		return Outcome{}, fmt.Errorf("update payment: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO refunds (refund_id, tenant_id, payment_id, operation_id, amount, status, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.ID, cmd.Tenant, r.PaymentID, cmd.OperationID, r.Amount, r.Status, created); err != nil {
		return Outcome{}, fmt.Errorf("insert refund: %w", err)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return Outcome{}, fmt.Errorf("encode refund: %w", err)
	}
	return Outcome{Status: http.StatusCreated, ContentType: "application/json",
		Location: "/v1/payments/" + r.PaymentID + "/refunds/" + r.ID, Body: body}, nil
}

func paymentNotFound(id string) Outcome {
	return ProblemOutcome(idemgate.NewProblem(http.StatusNotFound, "not-found", "Not found", "payment "+id+" does not exist"))
}
