package command

import (
	"encoding/json"
	"net/http"

	"github.com/idemgate/idemgate"
)

// validateCreatePayment checks a payments.create body against the contract
// and returns the normalised request that the command event carries.
func validateCreatePayment(body []byte) ([]byte, *Problem) {
	m, p := object(body, "amount", "currency", "customer", "description")
	if p != nil {
		return nil, p
	}
	var req idemgate.CreatePayment
	if req.Amount, p = positiveAmount(m, "amount", idemgate.MaxAmount); p != nil {
		return nil, p
	}
	var cur string
	if cur, _, p = stringField(m, "currency", true, 3, 3); p != nil {
		return nil, p
	}
	if !currencyCode.MatchString(cur) {
		return nil, errValidation(`"currency" must be three upper-case letters (ISO 4217), e.g. "EUR"`)
	}
	req.Currency = cur
	if req.Customer, _, p = stringField(m, "customer", true, 1, 64); p != nil {
		return nil, p
	}
	desc, present, p := stringField(m, "description", false, 0, 255)
	if p != nil {
		return nil, p
	}
	if present {
		req.Description = &desc
	}
	out, _ := json.Marshal(req) // plain fields always encode
	return out, nil
}

// createPayment handles POST /v1/payments.
func (a *API) createPayment(w http.ResponseWriter, r *http.Request) {
	a.accept(w, r, idemgate.OpCreatePayment, "", validateCreatePayment)
}
