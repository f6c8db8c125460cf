package payments

import (
	"encoding/json"
	"regexp"

	"github.com/google/uuid"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/validate"
)

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// ValidateCreatePayment checks a payments.create body against the
// contract and returns the normalised request its command event carries.
func ValidateCreatePayment(body []byte) (json.RawMessage, error) {
	m, err := validate.Object(body, "amount", "currency", "customer", "description")
	if err != nil {
		return nil, err
	}
	var req CreatePayment
	if req.Amount, err = validate.PositiveInt(m, "amount", MaxAmount); err != nil {
		return nil, err
	}
	if req.Currency, _, err = validate.String(m, "currency", true, 3, 3); err != nil {
		return nil, err
	}
	if !currencyCode.MatchString(req.Currency) {
		return nil, idemgate.Invalid(`"currency" must be three upper-case letters (ISO 4217), e.g. "EUR"`)
	}
	if req.Customer, _, err = validate.String(m, "customer", true, 1, 64); err != nil {
		return nil, err
	}
	desc, present, err := validate.String(m, "description", false, 0, 255)
	if err != nil {
		return nil, err
	}
	if present {
		req.Description = &desc
	}
	return json.Marshal(req)
}

// ValidateCreateRefund checks a refunds.create body.
func ValidateCreateRefund(body []byte) (json.RawMessage, error) {
	m, err := validate.Object(body, "amount")
	if err != nil {
		return nil, err
	}
	var req CreateRefund
	if req.Amount, err = validate.PositiveInt(m, "amount", MaxAmount); err != nil {
		return nil, err
	}
	return json.Marshal(req)
}

// refundTarget is the refunded payment. Whether it exists is decided by
// the projector, in order with the payment's own creation, and recorded
// as the outcome (a stored 404); a path that cannot name a payment is
// refused at once (404) and consumes no key.
func refundTarget(params map[string]string) (string, error) {
	id, ok := canonicalUUID(params["paymentID"])
	if !ok {
		return "", idemgate.NotFound("payment " + params["paymentID"])
	}
	return id, nil
}

// canonicalUUID accepts a UUID in its 36-character spelling and returns
// it in lower case.
func canonicalUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}
