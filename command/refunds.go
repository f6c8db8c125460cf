package command

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/idemgate/idemgate"
)

// validateCreateRefund checks a refunds.create body.
func validateCreateRefund(body []byte) ([]byte, *Problem) {
	m, p := object(body, "amount")
	if p != nil {
		return nil, p
	}
	var req idemgate.CreateRefund
	if req.Amount, p = positiveAmount(m, "amount", idemgate.MaxAmount); p != nil {
		return nil, p
	}
	out, _ := json.Marshal(req) // plain fields always encode
	return out, nil
}

// createRefund handles POST /v1/payments/{paymentID}/refunds. Whether the
// payment exists is decided by the projector, in order with the payment's
// own creation, and recorded as the outcome (a stored 404); a path that
// cannot name a payment is refused at once and consumes no key.
func (a *API) createRefund(w http.ResponseWriter, r *http.Request) {
	paymentID, ok := pathUUID(r, "paymentID")
	if !ok {
		a.reject(w, errNotFound("payment "+chi.URLParam(r, "paymentID")))
		return
	}
	a.accept(w, r, idemgate.OpCreateRefund, paymentID, validateCreateRefund)
}
