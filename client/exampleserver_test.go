package client_test

import (
	"io"
	"net/http"
	"net/http/httptest"
)

// newExampleServer stands in for `make run`'s server in the examples, so
// that they run and their output is checked: it answers each POST as
// idemgate does when the outcome arrives within the client's
// Prefer: wait (201, Preference-Applied), with the examples' bodies.
func newExampleServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer dev-key-a" || r.Header.Get("Idempotency-Key") == "" {
			http.Error(w, "not in the example", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Preference-Applied", r.Header.Get("Prefer"))
		switch r.URL.Path {
		case "/v1/payments":
			w.Header().Set("Location", "/v1/payments/pay_1")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"id":"pay_1","operation_id":"0b5e7d4c-2f0a-4c3e-9d61-3b0f6f1f2a11","status":"succeeded","amount":1000,"currency":"EUR","customer":"cus_1","description":null,"refunded_amount":0,"created_at":"2026-01-02T03:04:05Z"}`)
		case "/v1/gateway/orders":
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"order":"ord_1","sku":"A-1","qty":2}`)
		default:
			http.NotFound(w, r)
		}
	}))
}
