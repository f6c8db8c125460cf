package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/testenv"
)

const payment = `{"amount":1000,"currency":"EUR","customer":"cus_1","description":"order 17"}`

// The same request as payment, spelled differently: key order, white
// space and number spelling do not make a different request.
const paymentRespelled = "{ \"description\": \"order 17\",\n \"customer\":\"cus_1\", \"currency\": \"EUR\", \"amount\": 1.0e3 }"

func TestAcceptCompleteReplay(t *testing.T) {
	s := startStack(t)

	first := s.postPayment("key-a", "pay-1", payment)
	mustEqual(t, "first status", first.Status, 202)
	loc := first.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v1/operations/") {
		t.Fatalf("Location = %q", loc)
	}
	mustEqual(t, "Retry-After", first.Header.Get("Retry-After"), "1")
	mustEqual(t, "first Idempotent-Replayed", first.Header.Get("Idempotent-Replayed"), "")
	opID := strings.TrimPrefix(loc, "/v1/operations/")
	if !bytes.Equal(first.Body, []byte(`{"operation_id":"`+opID+`","status":"pending"}`)) {
		t.Fatalf("202 body = %s", first.Body)
	}

	rec := s.outcomeOf("key-a", loc)
	mustEqual(t, "recorded status", rec.Status, 201)

	// Two retries, one spelled differently: both replay the same bytes.
	r1 := s.postPayment("key-a", "pay-1", payment)
	r2 := s.postPayment("key-a", `"pay-1"`, paymentRespelled) // sf-string spelling of the same key
	for i, r := range []response{r1, r2} {
		mustEqual(t, "replay status", r.Status, 201)
		mustEqual(t, "Idempotent-Replayed", r.Header.Get("Idempotent-Replayed"), "true")
		mustEqual(t, "Content-Type", r.Header.Get("Content-Type"), "application/json")
		if !bytes.Equal(r.Body, r1.Body) {
			t.Fatalf("replay %d body differs:\n%s\n%s", i, r.Body, r1.Body)
		}
		mustEqual(t, "replay Location", r.Header.Get("Location"), r1.Header.Get("Location"))
	}
	if !bytes.Equal(r1.Body, rec.Body) {
		t.Fatalf("replayed body differs from the recorded one:\n%s\n%s", r1.Body, rec.Body)
	}
	var p struct {
		ID, OperationID, Status, Currency, Customer string
		Amount                                      int64
		RefundedAmount                              int64 `json:"refunded_amount"`
	}
	if err := json.Unmarshal(r1.Body, &p); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "payment amount", p.Amount, int64(1000))
	mustEqual(t, "payment status", p.Status, "succeeded")
	mustEqual(t, "payment Location", r1.Header.Get("Location"), "/v1/payments/"+p.ID)

	read := s.do("GET", "/v1/payments/"+p.ID, "key-a", "", "", "")
	mustEqual(t, "GET payment", read.Status, 200)
	mustEqual(t, "GET payment as tenant-b", s.do("GET", "/v1/payments/"+p.ID, "key-b", "", "", "").Status, 404)
	mustEqual(t, "GET operation as tenant-b", s.do("GET", loc, "key-b", "", "", "").Status, 404)
	mustEqual(t, "payments", s.count(`SELECT count(*) FROM payments`), 1)
}

func TestDeclinedPaymentIsRecordedAndReplayed(t *testing.T) {
	s := startStack(t)
	body := `{"amount":1000001,"currency":"EUR","customer":"cus_2"}`
	first := s.postPayment("key-a", "big-1", body)
	mustEqual(t, "status", first.Status, 202)
	s.waitCompleted("key-a", first.Header.Get("Location"))
	r := s.postPayment("key-a", "big-1", body)
	mustEqual(t, "replayed status", r.Status, 402)
	mustEqual(t, "Content-Type", r.Header.Get("Content-Type"), "application/problem+json")
	if !bytes.Contains(r.Body, []byte(`/payment-declined"`)) {
		t.Fatalf("body = %s", r.Body)
	}
	mustEqual(t, "payments", s.count(`SELECT count(*) FROM payments`), 0)
}

func TestDifferentBodySameKeyConflicts(t *testing.T) {
	s := startStack(t)
	first := s.postPayment("key-a", "pay-2", payment)
	mustEqual(t, "first", first.Status, 202)

	other := `{"amount":1001,"currency":"EUR","customer":"cus_1","description":"order 17"}`
	pendingConflict := s.postPayment("key-a", "pay-2", other) // while pending
	s.waitCompleted("key-a", first.Header.Get("Location"))
	doneConflict := s.postPayment("key-a", "pay-2", other) // once completed
	for _, r := range []response{pendingConflict, doneConflict} {
		mustEqual(t, "status", r.Status, 409)
		mustEqual(t, "Content-Type", r.Header.Get("Content-Type"), "application/problem+json")
		var prob struct {
			Type   string
			Status int
		}
		_ = json.Unmarshal(r.Body, &prob)
		if !strings.HasSuffix(prob.Type, "/idempotency-key-reused") || prob.Status != 409 {
			t.Fatalf("problem = %s", r.Body)
		}
	}
	// The same key under another tenant is another command (I6).
	mustEqual(t, "tenant-b same key", s.postPayment("key-b", "pay-2", other).Status, 202)
	mustEqual(t, "tenant-a claims", s.count(`SELECT count(*) FROM idempotency_claims WHERE tenant_id = 'tenant-a'`), 1)
	mustEqual(t, "tenant-a payments of 1001", s.count(`SELECT count(*) FROM payments WHERE tenant_id = 'tenant-a' AND amount = 1001`), 0)
	mustEqual(t, "tenant-a payments", s.count(`SELECT count(*) FROM payments WHERE tenant_id = 'tenant-a'`), 1)
}

// TestSameKeyStorm fires 64 concurrent requests with one key (I1, I3, I4).
func TestSameKeyStorm(t *testing.T) {
	s := startStack(t)
	const n = 64
	var wg sync.WaitGroup
	results := make([]response, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := payment
			if i%2 == 1 {
				body = paymentRespelled
			}
			results[i] = s.postPayment("key-a", "storm-1", body)
		}()
	}
	close(start)
	wg.Wait()
	fresh, locs := 0, map[string]bool{}
	for i, r := range results {
		if r.Status != 202 && r.Status != 201 {
			t.Fatalf("request %d: status %d: %s", i, r.Status, r.Body)
		}
		if r.Header.Get("Idempotent-Replayed") != "true" {
			fresh++
		}
		if r.Status == 202 {
			locs[r.Header.Get("Location")] = true
		}
	}
	mustEqual(t, "requests that made the claim", fresh, 1)
	mustEqual(t, "distinct operations", len(locs), 1)
	for loc := range locs {
		s.waitCompleted("key-a", loc)
	}
	mustEqual(t, "claims", s.count(`SELECT count(*) FROM idempotency_claims`), 1)
	mustEqual(t, "processed events", s.count(`SELECT count(*) FROM processed_events`), 1)
	mustEqual(t, "outbox rows", s.count(`SELECT count(*) FROM outbox`), 1)
	mustEqual(t, "payments", s.count(`SELECT count(*) FROM payments`), 1)
}

// TestRejectedRequestsDoNotConsumeTheKey checks I7: every request refused
// before the claim leaves its key free for the corrected request.
func TestRejectedRequestsDoNotConsumeTheKey(t *testing.T) {
	s := startStack(t)
	const key = "fix-me-1"
	cases := []struct {
		name                string
		apiKey, ctype, body string
		status              int
	}{
		{"Unauthenticated", "", "application/json", payment, 401},
		{"UnknownAPIKey", "nope", "application/json", payment, 401},
		{"NotJSON", "key-a", "text/plain", payment, 415},
		{"MalformedJSON", "key-a", "application/json", `{"amount":`, 400},
		{"UnknownField", "key-a", "application/json", `{"amount":1,"currency":"EUR","customer":"c","vip":true}`, 422},
		{"AmountAsString", "key-a", "application/json", `{"amount":"1000","currency":"EUR","customer":"c"}`, 422},
		{"FractionalAmount", "key-a", "application/json", `{"amount":1.5,"currency":"EUR","customer":"c"}`, 422},
		{"BadCurrency", "key-a", "application/json", `{"amount":1,"currency":"eur","customer":"c"}`, 422},
		{"TooLarge", "key-a", "application/json", `{"customer":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("POST", "/v1/payments", c.apiKey, key, c.ctype, c.body)
			mustEqual(t, "status", r.Status, c.status)
			mustEqual(t, "Content-Type", r.Header.Get("Content-Type"), "application/problem+json")
		})
	}
	mustEqual(t, "missing key", s.do("POST", "/v1/payments", "key-a", "", "application/json", payment).Status, 400)
	mustEqual(t, "claims after rejections", s.count(`SELECT count(*) FROM idempotency_claims`), 0)
	r := s.postPayment("key-a", key, payment)
	mustEqual(t, "corrected request", r.Status, 202)
	mustEqual(t, "Idempotent-Replayed", r.Header.Get("Idempotent-Replayed"), "")
}

// TestDuplicateDeliveryAppliesOnce delivers one command event three times
// (I3): the projector applies it once.
func TestDuplicateDeliveryAppliesOnce(t *testing.T) {
	s := startStack(t)
	first := s.postPayment("key-a", "dup-1", payment)
	mustEqual(t, "status", first.Status, 202)
	s.waitCompleted("key-a", first.Header.Get("Location"))

	recs := s.commandRecords()
	mustEqual(t, "command records", len(recs), 1)
	orig := recs[0]
	cl, err := kgo.NewClient(testenv.KafkaOptions(t, s.brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var last *kgo.Record
	for range 2 {
		dup := &kgo.Record{Topic: orig.Topic, Key: orig.Key, Value: orig.Value, Headers: orig.Headers}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res := cl.ProduceSync(ctx, dup)
		cancel()
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		last = res[0].Record
	}
	mustEqual(t, "duplicates on the original's partition", last.Partition, orig.Partition)
	s.waitCommittedPast(last.Topic, last.Partition, last.Offset)

	mustEqual(t, "payments", s.count(`SELECT count(*) FROM payments`), 1)
	mustEqual(t, "processed events", s.count(`SELECT count(*) FROM processed_events`), 1)
	mustEqual(t, "outbox rows", s.count(`SELECT count(*) FROM outbox`), 1)
}
