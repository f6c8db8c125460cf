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

// Payment is the read model of a payment.
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

// Payment reads one of tenant's payments; found is false otherwise.
func (s *Reads) Payment(ctx context.Context, tenant, id string) (p Payment, found bool, err error) {
	var created time.Time
	err = s.db.Pool.QueryRow(ctx, `
SELECT payment_id::TEXT, operation_id::TEXT, status, amount, currency, customer, description, refunded_amount, created_at
FROM payments WHERE payment_id = $1 AND tenant_id = $2`, id, tenant).Scan(
		&p.ID, &p.OperationID, &p.Status, &p.Amount, &p.Currency, &p.Customer, &p.Description, &p.RefundedAmount, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("read payment: %w", err)
	}
	p.CreatedAt = idemgate.FormatTime(created)
	return p, true, nil
}

func (a *API) getPayment(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "paymentID")
	if uuid.Validate(id) != nil {
		writeProblem(w, errNotFound("payment "+id))
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
	id := chi.URLParam(r, "operationID")
	if uuid.Validate(id) != nil {
		writeProblem(w, errNotFound("operation "+id))
		return
	}
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
