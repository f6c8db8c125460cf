package payments

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
)

// Payment and refund ids derive from their operation's id, so that a
// retried transaction computes the same ids.
var (
	paymentIDSpace = uuid.MustParse("6f1c1f0e-8a43-4d3e-9d0a-6a1c8e1d2b7f")
	refundIDSpace  = uuid.MustParse("0b8e3c5a-2d7f-4f61-b1c9-3e5a7d9f1a2c")
)

// PaymentID is the id of the payment an operation creates.
func PaymentID(operationID string) string {
	return uuid.NewSHA1(paymentIDSpace, []byte(operationID)).String()
}

// RefundID is the id of the refund an operation creates.
func RefundID(operationID string) string {
	return uuid.NewSHA1(refundIDSpace, []byte(operationID)).String()
}

// createPayment applies payments.create to the payments read model.
type createPayment struct{ now func() time.Time }

var _ idemgate.QueuedBatchTxApplier = createPayment{}

func (a createPayment) ApplyTx(ctx context.Context, tx pgx.Tx, cmd idemgate.Command) (idemgate.Response, error) {
	out, err := a.ApplyTxBatch(ctx, tx, []idemgate.Command{cmd})
	if err != nil {
		return idemgate.Response{}, err
	}
	return out[0], nil
}

// ApplyTxBatch applies a run of payments.create commands with one
// multi-row insert.
func (a createPayment) ApplyTxBatch(ctx context.Context, tx pgx.Tx, cmds []idemgate.Command) ([]idemgate.Response, error) {
	out, insert, err := a.batch(cmds)
	if err != nil || insert == nil {
		return out, err
	}
	if _, err := tx.Exec(ctx, insert.SQL, insert.Arguments...); err != nil {
		return nil, fmt.Errorf("insert payments: %w", err)
	}
	return out, nil
}

// QueueTxBatch queues the same multi-row insert as ApplyTxBatch (the
// projector's batches: it goes out with the outbox rows).
func (a createPayment) QueueTxBatch(_ context.Context, b *pgx.Batch, cmds []idemgate.Command) ([]idemgate.Response, error) {
	out, insert, err := a.batch(cmds)
	if err != nil || insert == nil {
		return out, err
	}
	b.Queue(insert.SQL, insert.Arguments...)
	return out, nil
}

// batch computes the responses of a run of payments.create commands and
// the one insert of their payments (nil when every one was declined).
func (a createPayment) batch(cmds []idemgate.Command) ([]idemgate.Response, *pgx.QueuedQuery, error) {
	out := make([]idemgate.Response, len(cmds))
	created := a.now().UTC().Truncate(time.Microsecond)
	var rows struct {
		ids, tenants, ops, currencies, customers, statuses []string
		descs                                              []*string
		amounts                                            []int64
	}
	for i, cmd := range cmds {
		var req CreatePayment
		if err := json.Unmarshal(cmd.Request, &req); err != nil || req.Amount <= 0 {
			return nil, nil, fmt.Errorf("%w: the command's request could not be read", idemgate.ErrPermanent)
		}
		if req.Amount > DeclineAbove {
			out[i] = declined()
			continue
		}
		p := Payment{ID: PaymentID(cmd.OperationID), OperationID: cmd.OperationID, Status: "succeeded", Amount: req.Amount,
			Currency: req.Currency, Customer: req.Customer, Description: req.Description, CreatedAt: idemgate.FormatTime(created)}
		resp, err := jsonResponse(http.StatusCreated, "/v1/payments/"+p.ID, p)
		if err != nil {
			return nil, nil, err
		}
		out[i] = resp
		rows.ids, rows.tenants, rows.ops = append(rows.ids, p.ID), append(rows.tenants, cmd.Tenant), append(rows.ops, p.OperationID)
		rows.amounts, rows.currencies, rows.customers = append(rows.amounts, p.Amount), append(rows.currencies, p.Currency), append(rows.customers, p.Customer)
		rows.descs, rows.statuses = append(rows.descs, p.Description), append(rows.statuses, p.Status)
	}
	if len(rows.ids) == 0 {
		return out, nil, nil
	}
	return out, &pgx.QueuedQuery{SQL: `INSERT INTO payments
    (payment_id, tenant_id, operation_id, amount, currency, customer, description, status, refunded_amount, created_at)
SELECT p, t, o, a, c, cu, d, s, 0, $9
FROM unnest($1::UUID[], $2::TEXT[], $3::UUID[], $4::INT8[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[]) AS x(p, t, o, a, c, cu, d, s)
ON CONFLICT (payment_id) DO NOTHING`, Arguments: []any{rows.ids, rows.tenants, rows.ops, rows.amounts, rows.currencies, rows.customers,
		rows.descs, rows.statuses, created}}, nil
}

func declined() idemgate.Response {
	return idemgate.ProblemResponse(idemgate.NewProblem(http.StatusPaymentRequired, ProblemPaymentDeclined, "Payment declined",
		fmt.Sprintf("payments above %d minor units are declined", DeclineAbove)))
}

// createRefund applies refunds.create: it refunds part of a payment of the
// same tenant, never more than the payment's amount in total.
type createRefund struct{ now func() time.Time }

func (a createRefund) ApplyTx(ctx context.Context, tx pgx.Tx, cmd idemgate.Command) (idemgate.Response, error) {
	var req CreateRefund
	if err := json.Unmarshal(cmd.Request, &req); err != nil || req.Amount <= 0 {
		return idemgate.Response{}, fmt.Errorf("%w: the command's request could not be read", idemgate.ErrPermanent)
	}
	notFound := idemgate.ProblemResponse(idemgate.NotFound("payment " + cmd.Target))
	if uuid.Validate(cmd.Target) != nil {
		return notFound, nil
	}
	var amount, refunded int64
	err := tx.QueryRow(ctx, `SELECT amount, refunded_amount FROM payments WHERE payment_id = $1 AND tenant_id = $2`,
		cmd.Target, cmd.Tenant).Scan(&amount, &refunded)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound, nil
	}
	if err != nil {
		return idemgate.Response{}, fmt.Errorf("read payment: %w", err)
	}
	if refunded+req.Amount > amount {
		return idemgate.ProblemResponse(idemgate.NewProblem(http.StatusUnprocessableEntity, ProblemRefundExceedsPayment, "Refund exceeds payment",
			fmt.Sprintf("payment %s has %d of %d minor units left to refund; %d were asked", cmd.Target, amount-refunded, amount, req.Amount))), nil
	}
	created := a.now().UTC().Truncate(time.Microsecond)
	r := Refund{
		ID:        RefundID(cmd.OperationID),
		PaymentID: cmd.Target,
		Amount:    req.Amount,
		Status:    "succeeded",
		CreatedAt: idemgate.FormatTime(created),
	}
	if _, err := tx.Exec(ctx, `UPDATE payments SET refunded_amount = refunded_amount + $1 WHERE payment_id = $2 AND tenant_id = $3`,
		req.Amount, cmd.Target, cmd.Tenant); err != nil {
		return idemgate.Response{}, fmt.Errorf("update payment: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO refunds (refund_id, tenant_id, payment_id, operation_id, amount, status, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.ID, cmd.Tenant, r.PaymentID, cmd.OperationID, r.Amount, r.Status, created); err != nil {
		return idemgate.Response{}, fmt.Errorf("insert refund: %w", err)
	}
	return jsonResponse(http.StatusCreated, "/v1/payments/"+r.PaymentID+"/refunds/"+r.ID, r)
}

// jsonResponse encodes v as a JSON response.
func jsonResponse(status int, location string, v any) (idemgate.Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return idemgate.Response{}, fmt.Errorf("encode response: %w", err)
	}
	return idemgate.Response{Status: status, ContentType: "application/json", Location: location, Body: body}, nil
}
