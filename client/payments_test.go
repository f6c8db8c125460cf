package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestCreatePaymentDecodesTheOutcome(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeJSONAnswer(w, 201, paymentBody, map[string]string{"Location": "/v1/payments/" + testPaymentID, "Preference-Applied": "wait=10"})
	})
	c := newTestClient(t, f, nil)
	pay, res, err := c.CreatePayment(context.Background(), NewPayment{Amount: 1000, Currency: "EUR", Customer: "cus_1"}, CallOptions{IdempotencyKey: "p-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := Payment{ID: testPaymentID, OperationID: testOpID, Status: "succeeded", Amount: 1000, Currency: "EUR", Customer: "cus_1",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)}
	if pay.ID != want.ID || pay.OperationID != want.OperationID || pay.Status != want.Status || pay.Amount != want.Amount ||
		pay.Currency != want.Currency || pay.Customer != want.Customer || pay.Description != "" || !pay.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("payment %+v, want %+v", pay, want)
	}
	if res.OperationID != testOpID || res.IdempotencyKey != "p-1" || res.Location() != "/v1/payments/"+testPaymentID {
		t.Fatalf("result %+v", res)
	}
	r := f.requests()[0]
	var sent map[string]any
	if err := json.Unmarshal(r.body, &sent); err != nil {
		t.Fatal(err)
	}
	if r.method != "POST" || r.path != "/v1/payments" || r.header.Get("Content-Type") != "application/json" ||
		len(sent) != 3 || sent["amount"] != 1000.0 || sent["currency"] != "EUR" || sent["customer"] != "cus_1" {
		t.Fatalf("sent %s %s %s", r.method, r.path, r.body)
	}
}

func TestCreatePaymentDeclinedIsAProblemWithTheOutcome(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeProblemAnswer(w, 402, "payment-declined", map[string]string{"Idempotent-Replayed": "true"})
	})
	c := newTestClient(t, f, nil)
	pay, res, err := c.CreatePayment(context.Background(), NewPayment{Amount: 2_000_000, Currency: "EUR", Customer: "c"}, CallOptions{})
	if pay != nil || !errors.Is(err, ErrPaymentDeclined) || res == nil || res.StatusCode != 402 || !res.Completed {
		t.Fatalf("payment %v result %+v error %v", pay, res, err)
	}
}

func TestRefundsAndReads(t *testing.T) {
	refund := `{"id":"r-1","payment_id":"` + testPaymentID + `","amount":300,"status":"succeeded","created_at":"2026-01-02T03:04:06.000000Z"}`
	f := newFake(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/payments/" + testPaymentID + "/refunds":
			writeJSONAnswer(w, 201, refund, map[string]string{"Preference-Applied": "wait=10"})
		case "POST /v1/payments/unknown/refunds":
			writeProblemAnswer(w, 404, "not-found", map[string]string{"Preference-Applied": "wait=10"})
		case "GET /v1/payments/" + testPaymentID:
			writeJSONAnswer(w, 200, paymentBody[:len(paymentBody)-1]+`,"refunds":[`+refund+`]}`, nil)
		case "GET /v1/payments/" + testPaymentID + "/refunds/r-1":
			writeJSONAnswer(w, 200, refund, nil)
		case "GET /v1/operations/" + testOpID:
			writeJSONAnswer(w, 200, `{"operation_id":"`+testOpID+`","status":"completed","response":{"status":201,"body":`+refund+`}}`, nil)
		default:
			writeProblemAnswer(w, 404, "not-found", nil)
		}
	})
	c := newTestClient(t, f, nil)
	ctx := context.Background()
	ref, _, err := c.CreateRefund(ctx, testPaymentID, NewRefund{Amount: 300}, CallOptions{})
	if err != nil || ref.ID != "r-1" || ref.PaymentID != testPaymentID || ref.Amount != 300 {
		t.Fatalf("refund %+v error %v", ref, err)
	}
	if _, res, err := c.CreateRefund(ctx, "unknown", NewRefund{Amount: 1}, CallOptions{}); !errors.Is(err, ErrNotFound) || !res.Completed {
		t.Fatalf("refund of an unknown payment: %v", err)
	}
	pay, err := c.GetPayment(ctx, testPaymentID)
	if err != nil || len(pay.Refunds) != 1 || pay.Refunds[0].Amount != 300 {
		t.Fatalf("payment %+v error %v", pay, err)
	}
	if r, err := c.GetRefund(ctx, testPaymentID, "r-1"); err != nil || r.ID != "r-1" {
		t.Fatalf("refund %+v error %v", r, err)
	}
	if _, err := c.GetPayment(ctx, "nope/../x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown payment: %v", err)
	}
	op, err := c.Operation(ctx, testOpID)
	if err != nil || !op.Completed() || op.Response.Status != 201 || string(op.Response.Body) != refund {
		t.Fatalf("operation %+v error %v", op, err)
	}
	escaped := false
	for _, r := range f.requests() {
		escaped = escaped || r.path == "/v1/payments/nope%2F..%2Fx"
	}
	if !escaped {
		t.Fatalf("the id %q was not escaped into one path segment", "nope/../x")
	}
}
