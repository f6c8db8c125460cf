package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/sqldb"
)

// Reads serves the read model.
type Reads struct{ db *sqldb.DB }

// NewReads returns the read side.
func NewReads(db *sqldb.DB) *Reads { return &Reads{db: db} }

// Payment is the read model of a payment, its refunds included.
type Payment struct {
	idemgate.Payment
	Refunds []Refund `json:"refunds"`
}

// Refund is the read model of a refund.
type Refund = idemgate.Refund

// Payment reads one of tenant's payments; found is false otherwise. The
// payment and its refunds come from one transaction, so refunded_amount
// and the refunds listed agree.
func (s *Reads) Payment(ctx context.Context, tenant, id string) (p Payment, found bool, err error) {
	err = s.db.InTx(ctx, func(tx pgx.Tx) error {
		p, found = Payment{}, false
		var created time.Time
		err := tx.QueryRow(ctx, `
SELECT payment_id::TEXT, operation_id::TEXT, status, amount, currency, customer, description, refunded_amount, created_at
FROM payments WHERE payment_id = $1 AND tenant_id = $2`, id, tenant).Scan(
			&p.ID, &p.OperationID, &p.Status, &p.Amount, &p.Currency, &p.Customer, &p.Description, &p.RefundedAmount, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read payment: %w", err)
		}
		p.CreatedAt = idemgate.FormatTime(created)
		if p.Refunds, err = refunds(ctx, tx, tenant, id, ""); err != nil {
			return err
		}
		found = true
		return nil
	})
	return p, found, err
}

// Refund reads one refund of one of tenant's payments.
func (s *Reads) Refund(ctx context.Context, tenant, paymentID, refundID string) (Refund, bool, error) {
	var rs []Refund
	err := s.db.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		rs, err = refunds(ctx, tx, tenant, paymentID, refundID)
		return err
	})
	if err != nil || len(rs) == 0 {
		return Refund{}, false, err
	}
	return rs[0], true, nil
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
	defer rows.Close()
	out := []Refund{}
	for rows.Next() {
		var r Refund
		var created time.Time
		if err := rows.Scan(&r.ID, &r.PaymentID, &r.Amount, &r.Status, &created); err != nil {
			return nil, fmt.Errorf("read refunds: %w", err)
		}
		r.CreatedAt = idemgate.FormatTime(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read refunds: %w", err)
	}
	return out, nil
}

func (a *API) getRefund(w http.ResponseWriter, r *http.Request) {
	pid, ok1 := pathUUID(r, "paymentID")
	rid, ok2 := pathUUID(r, "refundID")
	if !ok1 || !ok2 {
		writeProblem(w, errNotFound("refund "+chi.URLParam(r, "refundID")))
		return
	}
	ref, found, err := a.reads.Refund(r.Context(), tenantOf(r), pid, rid)
	if err != nil {
		writeError(w, r, a.logger, err)
		return
	}
	if !found {
		writeProblem(w, errNotFound("refund "+rid))
		return
	}
	writeJSON(w, http.StatusOK, ref)
}

// pathUUID reads a path parameter that must be a UUID in its canonical
// 36-character spelling, returned in lower case.
func pathUUID(r *http.Request, name string) (string, bool) {
	s := chi.URLParam(r, name)
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

func (a *API) getPayment(w http.ResponseWriter, r *http.Request) {
	id, ok := pathUUID(r, "paymentID")
	if !ok {
		writeProblem(w, errNotFound("payment "+chi.URLParam(r, "paymentID")))
		return
	}
	p, found, err := a.reads.Payment(r.Context(), tenantOf(r), id)
	if err != nil {
		writeError(w, r, a.logger, err)
		return
	}
	if !found {
		writeProblem(w, errNotFound("payment "+id))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// operationView is the body of GET /v1/operations/{id}.
type operationView struct {
	OperationID string          `json:"operation_id"`
	Status      string          `json:"status"`
	Response    *storedResponse `json:"response,omitempty"`
}

type storedResponse struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

func (a *API) getOperation(w http.ResponseWriter, r *http.Request) {
	id, ok := pathUUID(r, "operationID")
	if !ok {
		writeProblem(w, errNotFound("operation "+chi.URLParam(r, "operationID")))
		return
	}
	var v OperationView
	var found bool
	v, found, err := a.claims.Operation(r.Context(), tenantOf(r), id)
	if err != nil {
		writeError(w, r, a.logger, err)
		return
	}
	if !found {
		writeProblem(w, errNotFound("operation "+id))
		return
	}
	out := operationView{OperationID: v.OperationID, Status: "pending"}
	if v.Response != nil {
		out.Status = "completed"
		out.Response = &storedResponse{Status: v.Response.Status, Body: v.Response.Body}
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, errInternal())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
