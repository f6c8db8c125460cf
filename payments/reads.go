package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
)

// readPayment serves GET /v1/payments/{paymentID}: the payment and its
// refunds, read in one transaction so that refunded_amount and the
// refunds listed agree.
func readPayment(ctx context.Context, tx pgx.Tx, req idemgate.ReadRequest) (idemgate.Response, error) {
	id, ok := canonicalUUID(req.Params["paymentID"])
	if !ok {
		return idemgate.Response{}, idemgate.NotFound("payment " + req.Params["paymentID"])
	}
	var p PaymentWithRefunds
	var created time.Time
	err := tx.QueryRow(ctx, `
SELECT payment_id::TEXT, operation_id::TEXT, status, amount, currency, customer, description, refunded_amount, created_at
FROM payments WHERE payment_id = $1 AND tenant_id = $2`, id, req.Tenant).Scan(
		&p.ID, &p.OperationID, &p.Status, &p.Amount, &p.Currency, &p.Customer, &p.Description, &p.RefundedAmount, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return idemgate.Response{}, idemgate.NotFound("payment " + id)
	}
	if err != nil {
		return idemgate.Response{}, fmt.Errorf("read payment: %w", err)
	}
	p.CreatedAt = idemgate.FormatTime(created)
	if p.Refunds, err = refunds(ctx, tx, req.Tenant, id, ""); err != nil {
		return idemgate.Response{}, err
	}
	return jsonResponse(http.StatusOK, "", p)
}

// readRefund serves GET /v1/payments/{paymentID}/refunds/{refundID}.
func readRefund(ctx context.Context, tx pgx.Tx, req idemgate.ReadRequest) (idemgate.Response, error) {
	pid, ok1 := canonicalUUID(req.Params["paymentID"])
	rid, ok2 := canonicalUUID(req.Params["refundID"])
	if !ok1 || !ok2 {
		return idemgate.Response{}, idemgate.NotFound("refund " + req.Params["refundID"])
	}
	rs, err := refunds(ctx, tx, req.Tenant, pid, rid)
	if err != nil {
		return idemgate.Response{}, err
	}
	if len(rs) == 0 {
		return idemgate.Response{}, idemgate.NotFound("refund " + rid)
	}
	return jsonResponse(http.StatusOK, "", rs[0])
}

// refunds lists a payment's refunds (one, when refundID is given).
func refunds(ctx context.Context, tx pgx.Tx, tenant, paymentID, refundID string) ([]Refund, error) {
	rows, err := tx.Query(ctx, `
SELECT refund_id::TEXT, payment_id::TEXT, amount, status, created_at FROM refunds
WHERE payment_id = $1 AND tenant_id = $2 AND ($3 = '' OR refund_id::TEXT = $3)
ORDER BY created_at, refund_id`, paymentID, tenant, refundID)
	if err != nil {
		return nil, fmt.Errorf("read refunds: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Refund, error) {
		var r Refund
		var created time.Time
		err := row.Scan(&r.ID, &r.PaymentID, &r.Amount, &r.Status, &created)
		r.CreatedAt = idemgate.FormatTime(created)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read refunds: %w", err)
	}
	if out == nil {
		out = []Refund{}
	}
	return out, nil
}
