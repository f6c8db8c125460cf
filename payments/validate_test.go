package payments

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/command"
)

const typeValidationFailed = "/validation-failed"

// validateForTest calls ValidateCreatePayment and splits its error into
// the problem the API would answer.
func validateForTest(body []byte) (json.RawMessage, *idemgate.Problem) {
	out, err := ValidateCreatePayment(body)
	if err == nil {
		return out, nil
	}
	var p *idemgate.Problem
	if !errors.As(err, &p) {
		p = &idemgate.Problem{Status: 0, Detail: err.Error()}
	}
	return out, p
}

// Test bodies for ValidateCreatePayment.
const (
	validPayment     = `{"amount":1000,"currency":"EUR","customer":"cus_1"}`
	validPaymentNorm = `{"amount":1000,"currency":"EUR","customer":"cus_1","description":null}`
)

// paymentWith returns validPayment with one member replaced (or added).
func paymentWith(name, raw string) string {
	m := map[string]json.RawMessage{
		"amount":   json.RawMessage(`1000`),
		"currency": json.RawMessage(`"EUR"`),
		"customer": json.RawMessage(`"cus_1"`),
	}
	m[name] = json.RawMessage(raw)
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// paymentWithout returns validPayment without one member.
func paymentWithout(name string) string {
	m := map[string]json.RawMessage{
		"amount":   json.RawMessage(`1000`),
		"currency": json.RawMessage(`"EUR"`),
		"customer": json.RawMessage(`"cus_1"`),
	}
	delete(m, name)
	b, _ := json.Marshal(m)
	return string(b)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestValidateCreatePayment(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // the normalised request; "" means a 422
	}{
		{name: "OK", body: validPayment, want: validPaymentNorm},
		{name: "OKKeyOrder", body: `{"customer":"cus_1","currency":"EUR","amount":1000}`, want: validPaymentNorm},
		{name: "OKWhitespace", body: " { \"amount\" : 1000 ,\n\"currency\" : \"EUR\", \"customer\":\"cus_1\" }", want: validPaymentNorm},

		{name: "OKAmountFraction", body: paymentWith("amount", `1000.0`), want: validPaymentNorm},
		{name: "OKAmountFractionZeros", body: paymentWith("amount", `1000.000000`), want: validPaymentNorm},
		{name: "OKAmountExponent", body: paymentWith("amount", `1e3`), want: validPaymentNorm},
		{name: "OKAmountExponentUpper", body: paymentWith("amount", `1E3`), want: validPaymentNorm},
		{name: "OKAmountExponentPlus", body: paymentWith("amount", `1e+3`), want: validPaymentNorm},
		{name: "OKAmount10e2", body: paymentWith("amount", `10e2`), want: validPaymentNorm},
		{name: "OKAmountNegativeExponent", body: paymentWith("amount", `100000e-2`), want: validPaymentNorm},
		{name: "OKAmountFractionExponent", body: paymentWith("amount", `1.5e3`), want: strings.Replace(validPaymentNorm, "1000", "1500", 1)},
		{name: "OKAmountOne", body: paymentWith("amount", `1`), want: strings.Replace(validPaymentNorm, "1000", "1", 1)},
		{name: "OKAmountMax", body: paymentWith("amount", `9007199254740991`), want: strings.Replace(validPaymentNorm, "1000", "9007199254740991", 1)},
		{name: "OKAmountMaxFraction", body: paymentWith("amount", `9007199254740991.0`), want: strings.Replace(validPaymentNorm, "1000", "9007199254740991", 1)},
		{name: "ErrAmountFraction", body: paymentWith("amount", `1.5`)},
		{name: "ErrAmountTinyFraction", body: paymentWith("amount", `1000.0000000000000001`)},
		{name: "ErrAmountNegativeExponent", body: paymentWith("amount", `1e-3`)},
		{name: "ErrAmountString", body: paymentWith("amount", `"1000"`)},
		{name: "ErrAmountZero", body: paymentWith("amount", `0`)},
		{name: "ErrAmountZeroFraction", body: paymentWith("amount", `0.0`)},
		{name: "ErrAmountMinusZero", body: paymentWith("amount", `-0`)},
		{name: "ErrAmountNegative", body: paymentWith("amount", `-1`)},
		{name: "ErrAmountNegativeLarge", body: paymentWith("amount", `-1000`)},
		{name: "ErrAmount2Pow53", body: paymentWith("amount", `9007199254740992`)},
		{name: "ErrAmount2Pow53Plus1", body: paymentWith("amount", `9007199254740993`)},
		{name: "ErrAmount2Pow53Exponent", body: paymentWith("amount", `9.007199254740992e15`)},
		{name: "ErrAmountAboveInt64", body: paymentWith("amount", `9223372036854775808`)},
		{name: "ErrAmountHuge", body: paymentWith("amount", `1e400`)},
		{name: "ErrAmountNull", body: paymentWith("amount", `null`)},
		{name: "ErrAmountBool", body: paymentWith("amount", `true`)},
		{name: "ErrAmountArray", body: paymentWith("amount", `[1000]`)},
		{name: "ErrAmountObject", body: paymentWith("amount", `{"value":1000}`)},
		{name: "ErrAmountMissing", body: paymentWithout("amount")},

		{name: "OKCurrencyEscaped", body: paymentWith("currency", `"\u0045UR"`), want: validPaymentNorm},
		{name: "ErrCurrencyLower", body: paymentWith("currency", `"eur"`)},
		{name: "ErrCurrencyMixedCase", body: paymentWith("currency", `"Eur"`)},
		{name: "ErrCurrencyShort", body: paymentWith("currency", `"EU"`)},
		{name: "ErrCurrencyLong", body: paymentWith("currency", `"EURO"`)},
		{name: "ErrCurrencyEmpty", body: paymentWith("currency", `""`)},
		{name: "ErrCurrencyDigit", body: paymentWith("currency", `"E1R"`)},
		{name: "ErrCurrencySpace", body: paymentWith("currency", `"EU "`)},
		{name: "ErrCurrencyTrailingNewline", body: paymentWith("currency", `"EUR\n"`)},
		{name: "ErrCurrencyNonASCII", body: paymentWith("currency", `"ÉUR"`)},
		{name: "ErrCurrencyNumber", body: paymentWith("currency", `978`)},
		{name: "ErrCurrencyNull", body: paymentWith("currency", `null`)},
		{name: "ErrCurrencyMissing", body: paymentWithout("currency")},

		{name: "OKCustomer1", body: paymentWith("customer", `"c"`), want: strings.Replace(validPaymentNorm, `"cus_1"`, `"c"`, 1)},
		{name: "OKCustomer64", body: paymentWith("customer", jsonString(strings.Repeat("c", 64))), want: strings.Replace(validPaymentNorm, `"cus_1"`, jsonString(strings.Repeat("c", 64)), 1)},
		{name: "OKCustomer64Runes", body: paymentWith("customer", jsonString(strings.Repeat("é", 64))), want: strings.Replace(validPaymentNorm, `"cus_1"`, jsonString(strings.Repeat("é", 64)), 1)},
		{name: "ErrCustomerEmpty", body: paymentWith("customer", `""`)},
		{name: "ErrCustomerTooLong", body: paymentWith("customer", jsonString(strings.Repeat("c", 65)))},
		{name: "ErrCustomerTooLongRunes", body: paymentWith("customer", jsonString(strings.Repeat("é", 65)))},
		{name: "ErrCustomerNumber", body: paymentWith("customer", `42`)},
		{name: "ErrCustomerNull", body: paymentWith("customer", `null`)},
		{name: "ErrCustomerObject", body: paymentWith("customer", `{"id":"cus_1"}`)},
		{name: "ErrCustomerMissing", body: paymentWithout("customer")},

		{name: "OKDescriptionNull", body: paymentWith("description", `null`), want: validPaymentNorm},
		{name: "OKDescriptionEmpty", body: paymentWith("description", `""`), want: strings.Replace(validPaymentNorm, `null`, `""`, 1)},
		{name: "OKDescription", body: paymentWith("description", `"Order 42"`), want: strings.Replace(validPaymentNorm, `null`, `"Order 42"`, 1)},
		{name: "OKDescription255", body: paymentWith("description", jsonString(strings.Repeat("d", 255))), want: strings.Replace(validPaymentNorm, `null`, jsonString(strings.Repeat("d", 255)), 1)},
		{name: "OKDescription255Runes", body: paymentWith("description", jsonString(strings.Repeat("€", 255))), want: strings.Replace(validPaymentNorm, `null`, jsonString(strings.Repeat("€", 255)), 1)},
		{name: "ErrDescriptionTooLong", body: paymentWith("description", jsonString(strings.Repeat("d", 256)))},
		{name: "ErrDescriptionTooLongRunes", body: paymentWith("description", jsonString(strings.Repeat("€", 256)))},
		{name: "ErrDescriptionNumber", body: paymentWith("description", `42`)},
		{name: "ErrDescriptionBool", body: paymentWith("description", `false`)},
		{name: "ErrDescriptionArray", body: paymentWith("description", `["a"]`)},

		{name: "ErrUnknownField", body: paymentWith("metadata", `{}`)},
		{name: "ErrUnknownFieldNull", body: paymentWith("extra", `null`)},
		{name: "ErrFieldWrongCase", body: `{"Amount":1000,"currency":"EUR","customer":"cus_1"}`},
		{name: "ErrFieldTrailingSpace", body: `{"amount ":1000,"amount":1000,"currency":"EUR","customer":"cus_1"}`},

		{name: "ErrEmptyObject", body: `{}`},
		{name: "ErrArray", body: `[` + validPayment + `]`},
		{name: "ErrNull", body: `null`},
		{name: "ErrString", body: `"` + validPayment + `"`},
		{name: "ErrNumber", body: `1000`},
		{name: "ErrEmptyBody", body: ``},
		{name: "ErrTruncated", body: `{"amount":1000,`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := validateForTest([]byte(tt.body))
			if tt.want != "" {
				if p != nil {
					t.Fatalf("ValidateCreatePayment(%s) = problem %d %s (%s), want %s", tt.body, p.Status, p.Type, p.Detail, tt.want)
				}
				if string(got) != tt.want {
					t.Fatalf("ValidateCreatePayment(%s) = %s, want %s", tt.body, got, tt.want)
				}
				return
			}
			if p == nil {
				t.Fatalf("ValidateCreatePayment(%s) = %s, want a 422", tt.body, got)
			}
			if got != nil {
				t.Errorf("ValidateCreatePayment(%s) returned %s alongside a problem, want nil", tt.body, got)
			}
			if p.Status != http.StatusUnprocessableEntity {
				t.Errorf("ValidateCreatePayment(%s) status = %d, want %d", tt.body, p.Status, http.StatusUnprocessableEntity)
			}
			if !strings.HasSuffix(p.Type, typeValidationFailed) {
				t.Errorf("ValidateCreatePayment(%s) type = %q, want suffix %q", tt.body, p.Type, typeValidationFailed)
			}
			if p.Detail == "" {
				t.Errorf("ValidateCreatePayment(%s) problem has no detail", tt.body)
			}
		})
	}
}

// TestValidateCreatePaymentRoundTrip checks that the normalised request
// decodes strictly into CreatePayment with the amount spelled as
// an integer, and validates again to itself, also through the canonical
// form the handler passes in.
func TestValidateCreatePaymentRoundTrip(t *testing.T) {
	bodies := []string{
		validPayment,
		`{"amount":1e3,"currency":"EUR","customer":"cus_1","description":"Order <42> & co"}`,
		`{"amount":1000.0,"currency":"USD","customer":"José","description":null}`,
		`{"amount":9007199254740991,"currency":"JPY","customer":"c","description":""}`,
		`{"amount":12.5e1,"currency":"GBP","customer":"\ud83d\ude00","description":"line\nbreak \u2028"}`,
	}
	for _, body := range bodies {
		canonical, err := command.Canonicalize([]byte(body))
		if err != nil {
			t.Fatalf("command.Canonicalize(%s): %v", body, err)
		}
		out, p := validateForTest(canonical)
		if p != nil {
			t.Fatalf("ValidateCreatePayment(%s) = problem %s", canonical, p.Detail)
		}
		raw, p := validateForTest([]byte(body))
		if p != nil || !bytes.Equal(raw, out) {
			t.Fatalf("ValidateCreatePayment(%s) = %s, %v; from its canonical form %s", body, raw, p, out)
		}

		dec := json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		var fields map[string]any
		if err := dec.Decode(&fields); err != nil {
			t.Fatalf("normalised %s does not decode: %v", out, err)
		}
		amount, ok := fields["amount"].(json.Number)
		if !ok || strings.ContainsAny(amount.String(), ".eE") {
			t.Fatalf("normalised %s: amount %v is not spelled as an integer", out, fields["amount"])
		}
		var req CreatePayment
		dec = json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Fatalf("normalised %s does not decode into CreatePayment: %v", out, err)
		}
		if n, _ := amount.Int64(); req.Amount != n || req.Amount <= 0 {
			t.Fatalf("normalised %s: amount %d", out, req.Amount)
		}

		again, p := validateForTest(out)
		if p != nil || !bytes.Equal(again, out) {
			t.Fatalf("ValidateCreatePayment(%s) = %s, %v, want itself", out, again, p)
		}
		outCanonical, err := command.Canonicalize(out)
		if err != nil {
			t.Fatalf("command.Canonicalize(%s): %v", out, err)
		}
		again, p = validateForTest(outCanonical)
		if p != nil || !bytes.Equal(again, out) {
			t.Fatalf("ValidateCreatePayment(%s) = %s, %v, want %s", outCanonical, again, p, out)
		}
	}
}

// FuzzValidateCreatePayment: ValidateCreatePayment never panics and
// answers either a normalised request or a 422; a normalised request is
// a valid CreatePayment that validates again to itself, also
// through its canonical form.
func FuzzValidateCreatePayment(f *testing.F) {
	for _, s := range []string{
		validPayment,
		`{"amount":1e3,"currency":"EUR","customer":"cus_1","description":"x"}`,
		`{"amount":1000.0,"currency":"EUR","customer":"cus_1","description":null}`,
		`{"amount":1.5,"currency":"EUR","customer":"cus_1"}`,
		`{"amount":"1000","currency":"EUR","customer":"cus_1"}`,
		`{"amount":9007199254740992,"currency":"EUR","customer":"cus_1"}`,
		`{"amount":1,"currency":"eur","customer":"cus_1"}`,
		`{"amount":1,"currency":"EUR","customer":""}`,
		`{"amount":1,"currency":"EUR","customer":"\ud83d\ude00","description":"<&>\u2028"}`,
		`{"amount":1,"currency":"EUR","customer":"c","extra":1}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, p := validateForTest(body)
		switch {
		case p == nil && out == nil:
			t.Fatalf("ValidateCreatePayment(%q) = nil, nil", body)
		case p != nil && out != nil:
			t.Fatalf("ValidateCreatePayment(%q) = %q and problem %v", body, out, p)
		case p != nil:
			if p.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(p.Type, typeValidationFailed) {
				t.Fatalf("ValidateCreatePayment(%q) = %d %s, want 422 %s", body, p.Status, p.Type, typeValidationFailed)
			}
			return
		}

		var req CreatePayment
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Fatalf("ValidateCreatePayment(%q) = %q: does not decode: %v", body, out, err)
		}
		if req.Amount < 1 || req.Amount > MaxAmount {
			t.Fatalf("ValidateCreatePayment(%q) = %q: amount out of range", body, out)
		}
		if !currencyCode.MatchString(req.Currency) {
			t.Fatalf("ValidateCreatePayment(%q) = %q: bad currency", body, out)
		}
		if n := utf8.RuneCountInString(req.Customer); n < 1 || n > 64 {
			t.Fatalf("ValidateCreatePayment(%q) = %q: customer of %d characters", body, out, n)
		}
		if req.Description != nil && utf8.RuneCountInString(*req.Description) > 255 {
			t.Fatalf("ValidateCreatePayment(%q) = %q: description too long", body, out)
		}

		canonical, err := command.Canonicalize(out)
		if err != nil {
			t.Fatalf("ValidateCreatePayment(%q) = %q: no canonical form: %v", body, out, err)
		}
		again, p := validateForTest(canonical)
		if p != nil || !bytes.Equal(again, out) {
			t.Fatalf("ValidateCreatePayment(%q) = %q; validating its canonical form %q gives %q, %v", body, out, canonical, again, p)
		}
		again, p = validateForTest(out)
		if p != nil || !bytes.Equal(again, out) {
			t.Fatalf("ValidateCreatePayment(%q) = %q; validating that gives %q, %v", body, out, again, p)
		}
	})
}
