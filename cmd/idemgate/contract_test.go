package main

// Contract tests: one table row per rule of the HTTP contract (README.md, docs/ARCHITECTURE.md)
// that pipeline_test.go does not already cover, run against the real
// serve and project roles on PostgreSQL and Kafka.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/idemgate/idemgate/testenv"
)

// ---- helpers (names distinct from stack_test.go's) ----

// startAPIOnly is startStack without the project role: every command it
// accepts stays pending until the test starts a projector itself
// (s.startRole("project")), which makes the pending state deterministic.
func startAPIOnly(t *testing.T, extra ...string) *stack {
	t.Helper()
	return startRoles(t, []string{"serve"}, extra...)
}

// on returns a view of s whose helpers fail t (a subtest) rather than the
// test that started the stack.
func (s *stack) on(t *testing.T) *stack {
	c := *s
	c.t = t
	return &c
}

// send is do with arbitrary headers (several values per name allowed).
func (s *stack) send(method, path, apiKey string, h http.Header, body string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for name, vs := range h {
		for _, v := range vs {
			req.Header.Add(name, v)
		}
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		s.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b.Bytes()}
}

// postWith POSTs JSON with the given Idempotency-Key values (nil: none)
// and extra header pairs.
func (s *stack) postWith(path, apiKey string, keys []string, body string, extra ...string) response {
	s.t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	if keys != nil {
		h["Idempotency-Key"] = keys
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Add(extra[i], extra[i+1])
	}
	return s.send("POST", path, apiKey, h, body)
}

func (s *stack) postRefund(apiKey, idemKey, paymentID, body string) response {
	s.t.Helper()
	return s.do("POST", "/v1/payments/"+paymentID+"/refunds", apiKey, idemKey, "application/json", body)
}

// scanNow reads one row, retrying serialization failures: the test's
// own reads run at SERIALIZABLE beside the projector's transactions, and
// PostgreSQL may abort even a read-only one (40001).
func (s *stack) scanNow(sql string, args []any, dest ...any) {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		err := s.db.Pool.QueryRow(context.Background(), sql, args...).Scan(dest...)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "40001" && attempt < 20 {
			time.Sleep(10 * time.Millisecond) // a retry's pause after a serialization failure, not a wait for anything
			continue
		}
		if err != nil {
			s.t.Fatalf("%s: %v", sql, err)
		}
		return
	}
}

// countNow is count, retrying serialization failures.
func (s *stack) countNow(sql string, args ...any) int {
	s.t.Helper()
	var n int
	s.scanNow(sql, args, &n)
	return n
}

// rawPost POSTs JSON from any goroutine (it fails no test itself).
func rawPost(base, path, apiKey, idemKey, body string, extra ...string) (response, error) {
	req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Idempotency-Key", idemKey)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Add(extra[i], extra[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b.Bytes()}, nil
}

// rawRefund POSTs a refund from any goroutine and returns the 202's
// Location.
func rawRefund(base, apiKey, idemKey, paymentID, body string) (string, error) {
	r, err := rawPost(base, "/v1/payments/"+paymentID+"/refunds", apiKey, idemKey, body)
	if err != nil {
		return "", err
	}
	if r.Status != 202 {
		return "", fmt.Errorf("refund %s: status %d: %s", idemKey, r.Status, r.Body)
	}
	return r.Header.Get("Location"), nil
}

type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// mustProblem checks an RFC 9457 answer: status, media type, the four
// members, and the type's suffix.
func mustProblem(t testing.TB, what string, r response, status int, typeSuffix string) problemDoc {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status = %d, want %d; body %s", what, r.Status, status, r.Body)
	}
	mustEqual(t, what+": Content-Type", r.Header.Get("Content-Type"), "application/problem+json")
	var p problemDoc
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("%s: problem body %q: %v", what, r.Body, err)
	}
	if !strings.HasSuffix(p.Type, typeSuffix) || p.Status != status || p.Title == "" || p.Detail == "" {
		t.Fatalf("%s: problem = %s, want type ending %q and status %d", what, r.Body, typeSuffix, status)
	}
	return p
}

// mustPending checks a 202 and returns its operation id.
func mustPending(t testing.TB, what string, r response, replayed bool) string {
	t.Helper()
	if r.Status != 202 {
		t.Fatalf("%s: status = %d, want 202; body %s", what, r.Status, r.Body)
	}
	loc := r.Header.Get("Location")
	opID := strings.TrimPrefix(loc, "/v1/operations/")
	if opID == loc || uuid.Validate(opID) != nil {
		t.Fatalf("%s: Location = %q", what, loc)
	}
	mustEqual(t, what+": Retry-After", r.Header.Get("Retry-After"), "1")
	mustEqual(t, what+": Content-Type", r.Header.Get("Content-Type"), "application/json")
	mustEqual(t, what+": body", string(r.Body), `{"operation_id":"`+opID+`","status":"pending"}`)
	want := ""
	if replayed {
		want = "true"
	}
	mustEqual(t, what+": Idempotent-Replayed", r.Header.Get("Idempotent-Replayed"), want)
	return opID
}

// recorded is a command's outcome as GET /v1/operations/{id} shows it.
type recorded struct {
	Status int
	Body   []byte
}

func (s *stack) outcomeOf(apiKey, location string) recorded {
	s.t.Helper()
	op := s.waitCompleted(apiKey, location)
	var v struct {
		OperationID string `json:"operation_id"`
		Response    struct {
			Status int             `json:"status"`
			Body   json.RawMessage `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(op.Body, &v); err != nil {
		s.t.Fatalf("operation view %s: %v", op.Body, err)
	}
	mustEqual(s.t, "operation view id", "/v1/operations/"+v.OperationID, location)
	return recorded{Status: v.Response.Status, Body: v.Response.Body}
}

// mustReplay checks that r replays the recorded outcome byte for byte.
func mustReplay(t testing.TB, what string, r response, rec recorded, contentType string) {
	t.Helper()
	if r.Status != rec.Status {
		t.Fatalf("%s: status = %d, want recorded %d; body %s", what, r.Status, rec.Status, r.Body)
	}
	mustEqual(t, what+": Idempotent-Replayed", r.Header.Get("Idempotent-Replayed"), "true")
	mustEqual(t, what+": Content-Type", r.Header.Get("Content-Type"), contentType)
	if !bytes.Equal(r.Body, rec.Body) {
		t.Fatalf("%s: body differs from the recorded one:\n%s\n%s", what, r.Body, rec.Body)
	}
}

// createPayment makes a payment as apiKey and returns its id once
// recorded, with the 201 body.
func (s *stack) createPayment(apiKey, idemKey, body string) (string, recorded) {
	s.t.Helper()
	first := s.postPayment(apiKey, idemKey, body)
	mustPending(s.t, "create payment "+idemKey, first, false)
	rec := s.outcomeOf(apiKey, first.Header.Get("Location"))
	mustEqual(s.t, "payment outcome", rec.Status, 201)
	var p struct{ ID string }
	if err := json.Unmarshal(rec.Body, &p); err != nil || uuid.Validate(p.ID) != nil {
		s.t.Fatalf("payment body %s", rec.Body)
	}
	return p.ID, rec
}

// ---- Idempotency-Key ----

func TestContractIdempotencyKey(t *testing.T) {
	s := startStack(t)
	long255 := strings.Repeat("k", 255)
	long256 := strings.Repeat("k", 256)
	refunds := "/v1/payments/" + uuid.NewString() + "/refunds"
	cases := []struct {
		name  string
		path  string   // default /v1/payments
		first []string // Idempotency-Key values; nil: none
		retry []string // when set: the same key spelled otherwise, must replay
		other []string // when set: another key, must be a new command
		// for a rejected first request:
		status  int
		problem string
	}{
		{name: "QuotedThenBareIsOneKey", first: []string{`"ik-1"`}, retry: []string{`ik-1`}},
		{name: "BareThenQuotedIsOneKey", first: []string{`ik-2`}, retry: []string{`"ik-2"`}},
		{name: "QuotedEscapesThenBareIsOneKey", first: []string{`"ik\"3\\x"`}, retry: []string{`ik"3\x`}},
		{name: "Length255Accepted", first: []string{long255}, retry: []string{`"` + long255 + `"`}},
		{name: "SurroundingSpaceIgnored", first: []string{"ik-5"}, retry: []string{"  ik-5 \t"}},
		{name: "KeysAreCaseSensitive", first: []string{"ik-Case"}, other: []string{"ik-case"}},
		{name: "Length256", first: []string{long256}, status: 400, problem: "/idempotency-key-malformed"},
		{name: "QuotedLength256", first: []string{`"` + long256 + `"`}, status: 400, problem: "/idempotency-key-malformed"},
		{name: "NonASCII", first: []string{"clé-1"}, status: 400, problem: "/idempotency-key-malformed"},
		{name: "QuotedNonASCII", first: []string{`"clé-2"`}, status: 400, problem: "/idempotency-key-malformed"},
		{name: "InnerSpace", first: []string{"a b"}, status: 400, problem: "/idempotency-key-malformed"},
		{name: "QuotedInnerSpace", first: []string{`"a b"`}, status: 400, problem: "/idempotency-key-malformed"},
		{name: "EmptyQuoted", first: []string{`""`}, status: 400, problem: "/idempotency-key-malformed"},
		{name: "UnterminatedQuote", first: []string{`"ik-9`}, status: 400, problem: "/idempotency-key-malformed"},
		{name: "TwoHeaders", first: []string{"ik-10", "ik-10"}, status: 400, problem: "/idempotency-key-malformed"},
		{name: "Missing", first: nil, status: 400, problem: "/idempotency-key-missing"},
		{name: "Empty", first: []string{""}, status: 400, problem: "/idempotency-key-missing"},
		{name: "RefundMissing", path: refunds, first: nil, status: 400, problem: "/idempotency-key-missing"},
		{name: "RefundTwoHeaders", path: refunds, first: []string{"ik-12", "ik-13"}, status: 400, problem: "/idempotency-key-malformed"},
	}
	accepted := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := s.on(t)
			path, body := c.path, payment
			if path == "" {
				path = "/v1/payments"
			} else {
				body = `{"amount":1}`
			}
			first := s.postWith(path, "key-a", c.first, body)
			if c.status != 0 {
				mustProblem(t, "first", first, c.status, c.problem)
				return
			}
			accepted++
			opID := mustPending(t, "first", first, false)
			if c.other != nil {
				accepted++
				if op2 := mustPending(t, "other key", s.postWith(path, "key-a", c.other, body), false); op2 == opID {
					t.Fatalf("keys %q and %q share operation %s", c.first, c.other, opID)
				}
				return
			}
			retry := s.postWith(path, "key-a", c.retry, body)
			switch retry.Status {
			case 202:
				mustEqual(t, "retry operation", mustPending(t, "retry", retry, true), opID)
			default:
				mustReplay(t, "retry", retry, s.outcomeOf("key-a", first.Header.Get("Location")), "application/json")
			}
		})
	}
	// Rejected keys consumed nothing (I7): one claim per accepted row.
	mustEqual(t, "claims", s.countNow(`SELECT count(*) FROM idempotency_claims`), accepted)
}

// ---- IDEMGATE_MISMATCH_STATUS=422 ----

func TestContractMismatchStatus422(t *testing.T) {
	s := startStack(t, "IDEMGATE_MISMATCH_STATUS", "422")
	other := `{"amount":1001,"currency":"EUR","customer":"cus_1","description":"order 17"}`
	first := s.postPayment("key-a", "mm-1", payment)
	mustPending(t, "first", first, false)
	cases := []struct {
		name   string
		before func(t *testing.T)
		do     func(s *stack) response
		status int
	}{
		{name: "DifferentBody", do: func(s *stack) response { return s.postPayment("key-a", "mm-1", other) }, status: 422},
		{name: "DifferentBodyOnceCompleted",
			before: func(t *testing.T) { s.on(t).waitCompleted("key-a", first.Header.Get("Location")) },
			do:     func(s *stack) response { return s.postPayment("key-a", "mm-1", other) }, status: 422},
		{name: "EquivalentBodyStillReplays",
			before: func(t *testing.T) { s.on(t).waitCompleted("key-a", first.Header.Get("Location")) },
			do:     func(s *stack) response { return s.postPayment("key-a", "mm-1", paymentRespelled) }, status: 201},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.before != nil {
				c.before(t)
			}
			r := c.do(s.on(t))
			if c.status == 422 {
				mustProblem(t, "reused key", r, 422, "/idempotency-key-reused")
				return
			}
			mustReplay(t, "retry", r, s.on(t).outcomeOf("key-a", first.Header.Get("Location")), "application/json")
		})
	}
	t.Run("RefundDifferentBody", func(t *testing.T) {
		s := s.on(t)
		pid, _ := s.createPayment("key-a", "mm-2", payment)
		mustPending(t, "refund", s.postRefund("key-a", "mm-r", pid, `{"amount":10}`), false)
		mustProblem(t, "refund reused key", s.postRefund("key-a", "mm-r", pid, `{"amount":11}`), 422, "/idempotency-key-reused")
	})
	mustEqual(t, "payments of 1001", s.countNow(`SELECT count(*) FROM payments WHERE amount = 1001`), 0)
}

// ---- equivalent bodies ----

func TestContractEquivalentBodies(t *testing.T) {
	s := startStack(t)
	const base = `{"amount":1000,"currency":"EUR","customer":"cus_1"}`
	const withDesc = `{"amount":1000,"currency":"EUR","customer":"cus_1","description":"d"}`
	cases := []struct {
		name         string
		first, retry string
		same         bool
	}{
		{"DecimalPoint", base, `{"amount":1000.0,"currency":"EUR","customer":"cus_1"}`, true},
		{"Exponent", base, `{"amount":1e3,"currency":"EUR","customer":"cus_1"}`, true},
		{"UpperExponentWithSign", base, `{"amount":1E+3,"currency":"EUR","customer":"cus_1"}`, true},
		{"FractionAndExponent", `{"amount":1e3,"currency":"EUR","customer":"cus_1"}`, `{"amount":10.00e2,"currency":"EUR","customer":"cus_1"}`, true},
		{"KeyOrder", base, `{"customer":"cus_1","currency":"EUR","amount":1000}`, true},
		{"WhiteSpace", base, "\n{ \"amount\" :\t1000 ,\r\n  \"currency\": \"EUR\",\"customer\" : \"cus_1\" }\n", true},
		{"StringEscapes", base, `{"amount":1000,"currency":"\u0045UR","customer":"cus\u005f1"}`, true},
		{"DescriptionAbsentThenPresent", base, withDesc, false},
		{"DescriptionPresentThenAbsent", withDesc, base, false},
		{"DescriptionNullVsAbsent", base, `{"amount":1000,"currency":"EUR","customer":"cus_1","description":null}`, false},
		{"OtherCustomer", base, `{"amount":1000,"currency":"EUR","customer":"cus_2"}`, false},
		{"OtherCurrency", base, `{"amount":1000,"currency":"USD","customer":"cus_1"}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := s.on(t)
			key := "eq-" + c.name
			first := s.postPayment("key-a", key, c.first)
			op := mustPending(t, "first", first, false)
			rec := s.outcomeOf("key-a", first.Header.Get("Location"))
			retry := s.postPayment("key-a", key, c.retry)
			if c.same {
				mustReplay(t, "retry", retry, rec, "application/json")
				mustEqual(t, "replay Location", strings.HasPrefix(retry.Header.Get("Location"), "/v1/payments/"), true)
			} else {
				mustProblem(t, "retry", retry, 409, "/idempotency-key-reused")
			}
			mustEqual(t, "payments of the key", s.countNow(`SELECT count(*) FROM payments WHERE operation_id = $1`, op), 1)
			mustEqual(t, "claims of the key", s.countNow(`SELECT count(*) FROM idempotency_claims WHERE idem_key = $1`, key), 1)
		})
	}
}

// ---- pending retries (deterministic: no projector until the end) ----

func TestContractPendingRetry(t *testing.T) {
	s := startAPIOnly(t)
	first := s.postPayment("key-a", "pend-1", payment)
	opID := mustPending(t, "first", first, false)
	loc := first.Header.Get("Location")
	cases := []struct {
		name  string
		check func(t *testing.T, s *stack)
	}{
		{"SameBodySame202", func(t *testing.T, s *stack) {
			r := s.postPayment("key-a", "pend-1", payment)
			mustEqual(t, "operation", mustPending(t, "retry", r, true), opID)
			mustEqual(t, "body", string(r.Body), string(first.Body))
			mustEqual(t, "Location", r.Header.Get("Location"), loc)
		}},
		{"EquivalentBodySame202", func(t *testing.T, s *stack) {
			r := s.do("POST", "/v1/payments", "key-a", `"pend-1"`, "application/json", paymentRespelled)
			mustEqual(t, "operation", mustPending(t, "retry", r, true), opID)
			mustEqual(t, "body", string(r.Body), string(first.Body))
		}},
		{"DifferentBodyConflicts", func(t *testing.T, s *stack) {
			mustProblem(t, "retry", s.postPayment("key-a", "pend-1", `{"amount":5,"currency":"EUR","customer":"c"}`), 409, "/idempotency-key-reused")
		}},
		{"OperationViewPending", func(t *testing.T, s *stack) {
			r := s.do("GET", loc, "key-a", "", "", "")
			mustEqual(t, "status", r.Status, 200)
			mustEqual(t, "Content-Type", r.Header.Get("Content-Type"), "application/json")
			mustEqual(t, "body", string(r.Body), `{"operation_id":"`+opID+`","status":"pending"}`)
		}},
		{"PreferWaitOnRetryTimesOutTo202", func(t *testing.T, s *stack) {
			start := time.Now()
			r := s.postWith("/v1/payments", "key-a", []string{"pend-1"}, payment, "Prefer", "wait=1")
			if d := time.Since(start); d < 900*time.Millisecond {
				t.Fatalf("answered after %v: the wait preference was not honoured", d)
			}
			mustEqual(t, "operation", mustPending(t, "retry", r, true), opID)
			mustEqual(t, "Preference-Applied", r.Header.Get("Preference-Applied"), "")
		}},
		{"PreferWaitOnNewCommandTimesOutTo202", func(t *testing.T, s *stack) {
			r := s.postWith("/v1/payments", "key-a", []string{"pend-2"}, payment, "Prefer", "wait=1")
			mustPending(t, "new", r, false)
			mustEqual(t, "Preference-Applied", r.Header.Get("Preference-Applied"), "")
		}},
		{"WaitingRetryGetsTheOutcomeOnceAProjectorRuns", func(t *testing.T, s *stack) {
			type answer struct {
				r   response
				err error
			}
			const pending = `idemgate_commands_replayed_total{operation="payments.create",state="pending"}`
			before, err := s.metric(pending)
			if err != nil {
				t.Fatal(err)
			}
			waiting := make(chan answer, 1)
			go func() {
				r, err := rawPost(s.base, "/v1/payments", "key-a", "pend-1", payment, "Prefer", "wait=30")
				waiting <- answer{r, err}
			}()
			// The retry is a pending replay still being handled: it waits
			// for the outcome, which no projector has recorded yet.
			testenv.Eventually(t, 10*time.Second, "the retry waits for its outcome", func() error {
				replays, err := s.metric(pending)
				if err != nil {
					return err
				}
				inFlight, err := s.metric("idemgate_requests_in_flight")
				if err != nil {
					return err
				}
				return testenv.Check(replays == before+1 && inFlight == 1, "pending replays %v (before %v), POSTs in flight %v", replays, before, inFlight)
			})
			s.startRole("project") // runs until the parent test ends
			rec := s.outcomeOf("key-a", loc)
			mustEqual(t, "recorded", rec.Status, 201)
			a := <-waiting
			if a.err != nil {
				t.Fatal(a.err)
			}
			mustReplay(t, "waiting retry", a.r, rec, "application/json")
			mustEqual(t, "Preference-Applied", a.r.Header.Get("Preference-Applied"), "wait=30")
			mustReplay(t, "later retry", s.postPayment("key-a", "pend-1", payment), rec, "application/json")
			mustEqual(t, "payments", s.countNow(`SELECT count(*) FROM payments WHERE operation_id = $1`, opID), 1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.check(t, s.on(t)) })
	}
	// However many retries ran, the key has one claim (whichever
	// subtests ran: each must pass alone).
	mustEqual(t, "claims of pend-1", s.countNow(`SELECT count(*) FROM idempotency_claims WHERE idem_key = 'pend-1'`), 1)
}

// ---- refunds ----

func TestContractRefunds(t *testing.T) {
	s := startStack(t)
	type refundBody struct {
		ID        string `json:"id"`
		PaymentID string `json:"payment_id"`
		Amount    int64  `json:"amount"`
		Status    string `json:"status"`
	}
	// Every subtest works on payments and keys of its own: each passes
	// alone (go test -run 'TestContractRefunds/X') as well as in turn.
	newPayment := func(s *stack, name string, amount int) string {
		id, _ := s.createPayment("key-a", name+"-pay", `{"amount":`+strconv.Itoa(amount)+`,"currency":"EUR","customer":"cus_r"}`)
		return id
	}
	cases := []struct {
		name  string
		check func(t *testing.T, s *stack, name string)
	}{
		{"Recorded201ReplayedByteForByte", func(t *testing.T, s *stack, name string) {
			pay := newPayment(s, name, 1000)
			first := s.postRefund("key-a", name, pay, `{"amount":300}`)
			mustPending(t, "first", first, false)
			rec := s.outcomeOf("key-a", first.Header.Get("Location"))
			mustEqual(t, "recorded", rec.Status, 201)
			var rb refundBody
			if err := json.Unmarshal(rec.Body, &rb); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, "refund payment_id", rb.PaymentID, pay)
			mustEqual(t, "refund amount", rb.Amount, int64(300))
			mustEqual(t, "refund status", rb.Status, "succeeded")
			mustEqual(t, "refund id is a UUID", uuid.Validate(rb.ID), nil)
			r1 := s.postRefund("key-a", name, pay, `{"amount":300}`)
			r2 := s.postRefund("key-a", `"`+name+`"`, pay, `{ "amount" : 3e2 }`)
			mustReplay(t, "replay", r1, rec, "application/json")
			mustReplay(t, "equivalent replay", r2, rec, "application/json")
			mustEqual(t, "replay Location", r2.Header.Get("Location"), r1.Header.Get("Location"))
			// The 201's Location names the refund.
			got := s.do("GET", r1.Header.Get("Location"), "key-a", "", "", "")
			mustEqual(t, "GET refund", got.Status, 200)
			var read refundBody
			if err := json.Unmarshal(got.Body, &read); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, "GET refund", read, rb)
		}},
		{"UnknownPaymentRecorded404", func(t *testing.T, s *stack, name string) {
			ghost := uuid.NewString()
			first := s.postRefund("key-a", name, ghost, `{"amount":1}`)
			mustPending(t, "first", first, false)
			rec := s.outcomeOf("key-a", first.Header.Get("Location"))
			mustEqual(t, "recorded", rec.Status, 404)
			r := s.postRefund("key-a", name, ghost, `{"amount":1}`)
			mustProblem(t, "replay", r, 404, "/not-found")
			mustReplay(t, "replay", r, rec, "application/problem+json")
		}},
		{"ExceedingRefundRecorded422", func(t *testing.T, s *stack, name string) {
			pay := newPayment(s, name, 1000)
			mustEqual(t, "first refund", s.outcomeOf("key-a", s.postRefund("key-a", name+"-300", pay, `{"amount":300}`).Header.Get("Location")).Status, 201)
			first := s.postRefund("key-a", name, pay, `{"amount":701}`) // 300 + 701 > 1000
			mustPending(t, "first", first, false)
			rec := s.outcomeOf("key-a", first.Header.Get("Location"))
			mustEqual(t, "recorded", rec.Status, 422)
			r := s.postRefund("key-a", name, pay, `{"amount":701}`)
			mustProblem(t, "replay", r, 422, "/refund-exceeds-payment")
			mustReplay(t, "replay", r, rec, "application/problem+json")
			mustEqual(t, "refunded_amount", s.countNow(`SELECT refunded_amount::INT FROM payments WHERE payment_id = $1`, pay), 300)
		}},
		{"RefundUpToTheAmountExactly", func(t *testing.T, s *stack, name string) {
			pay := newPayment(s, name, 1000)
			mustEqual(t, "first refund", s.outcomeOf("key-a", s.postRefund("key-a", name+"-300", pay, `{"amount":300}`).Header.Get("Location")).Status, 201)
			first := s.postRefund("key-a", name, pay, `{"amount":700}`)
			mustPending(t, "first", first, false)
			mustEqual(t, "recorded", s.outcomeOf("key-a", first.Header.Get("Location")).Status, 201)
			mustEqual(t, "refunded_amount", s.countNow(`SELECT refunded_amount::INT FROM payments WHERE payment_id = $1`, pay), 1000)
		}},
		{"SameKeyOtherPaymentConflicts", func(t *testing.T, s *stack, name string) {
			pay, pay2 := newPayment(s, name+"-1", 1000), newPayment(s, name+"-2", 500)
			mustEqual(t, "refund", s.outcomeOf("key-a", s.postRefund("key-a", name, pay, `{"amount":300}`).Header.Get("Location")).Status, 201)
			mustProblem(t, "same key, other path", s.postRefund("key-a", name, pay2, `{"amount":300}`), 409, "/idempotency-key-reused")
			mustEqual(t, "refunds of pay2", s.countNow(`SELECT count(*) FROM refunds WHERE payment_id = $1`, pay2), 0)
		}},
		{"SameKeyAcrossOperationsIsTwoCommands", func(t *testing.T, s *stack, name string) {
			pay := newPayment(s, name, 500)
			p := s.postPayment("key-a", name, `{"amount":50,"currency":"EUR","customer":"cus_s"}`)
			r := s.postRefund("key-a", name, pay, `{"amount":50}`)
			pOp := mustPending(t, "payment", p, false)
			rOp := mustPending(t, "refund", r, false)
			if pOp == rOp {
				t.Fatalf("one operation %s for two commands", pOp)
			}
			mustEqual(t, "payment outcome", s.outcomeOf("key-a", p.Header.Get("Location")).Status, 201)
			mustEqual(t, "refund outcome", s.outcomeOf("key-a", r.Header.Get("Location")).Status, 201)
			mustEqual(t, "claims of the key", s.countNow(`SELECT count(*) FROM idempotency_claims WHERE idem_key = $1`, name), 2)
		}},
		{"NonUUIDPaymentIDRefusedAtOnceKeyStaysFree", func(t *testing.T, s *stack, name string) {
			pay := newPayment(s, name, 500)
			for _, bad := range []string{"not-a-uuid", "1234", strings.Replace(pay, "-", "", -1)} {
				r := s.postRefund("key-a", name, bad, `{"amount":5}`)
				mustProblem(t, "refund of "+bad, r, 404, "/not-found")
				mustEqual(t, "Idempotent-Replayed", r.Header.Get("Idempotent-Replayed"), "")
			}
			mustEqual(t, "claims of the key", s.countNow(`SELECT count(*) FROM idempotency_claims WHERE idem_key = $1`, name), 0)
			r := s.postRefund("key-a", name, pay, `{"amount":5}`)
			mustPending(t, "corrected", r, false)
			mustEqual(t, "outcome", s.outcomeOf("key-a", r.Header.Get("Location")).Status, 201)
		}},
		{"ConcurrentRefundsNeverExceedThePayment", func(t *testing.T, s *stack, name string) {
			pay := newPayment(s, name, 1000)
			const n = 8 // 8 x 300 on 1000: exactly 3 can succeed
			locs := make([]string, n)
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					loc, err := rawRefund(s.base, "key-a", name+"-"+strconv.Itoa(i), pay, `{"amount":300}`)
					locs[i] = loc
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			by := map[int]int{}
			for _, loc := range locs {
				by[s.outcomeOf("key-a", loc).Status]++
			}
			mustEqual(t, "201 outcomes", by[201], 3)
			mustEqual(t, "422 outcomes", by[422], n-3)
			mustEqual(t, "refunded_amount", s.countNow(`SELECT refunded_amount::INT FROM payments WHERE payment_id = $1`, pay), 900)
			mustEqual(t, "refund rows", s.countNow(`SELECT count(*) FROM refunds WHERE payment_id = $1`, pay), 3)
		}},
		{"ReadModelShowsRefunds", func(t *testing.T, s *stack, name string) {
			pay := newPayment(s, name, 1000)
			want := map[string]int64{}
			for i, amount := range []int64{300, 700} {
				rec := s.outcomeOf("key-a", s.postRefund("key-a", name+"-"+strconv.Itoa(i), pay,
					`{"amount":`+strconv.FormatInt(amount, 10)+`}`).Header.Get("Location"))
				mustEqual(t, "refund", rec.Status, 201)
				var rb refundBody
				if err := json.Unmarshal(rec.Body, &rb); err != nil {
					t.Fatal(err)
				}
				want[rb.ID] = amount
			}
			r := s.do("GET", "/v1/payments/"+pay, "key-a", "", "", "")
			mustEqual(t, "status", r.Status, 200)
			var p struct {
				ID             string       `json:"id"`
				RefundedAmount *int64       `json:"refunded_amount"`
				Refunds        []refundBody `json:"refunds"`
			}
			if err := json.Unmarshal(r.Body, &p); err != nil || p.RefundedAmount == nil {
				t.Fatalf("payment %s", r.Body)
			}
			mustEqual(t, "id", p.ID, pay)
			mustEqual(t, "refunded_amount", *p.RefundedAmount, 1000)
			mustEqual(t, "refunds", len(p.Refunds), 2)
			for _, rf := range p.Refunds {
				mustEqual(t, "refund payment_id", rf.PaymentID, pay)
				mustEqual(t, "refund status", rf.Status, "succeeded")
				mustEqual(t, "refund "+rf.ID, rf.Amount, want[rf.ID])
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.check(t, s.on(t), "rf-"+c.name) })
	}
}

// ---- tenant isolation (I6) ----

func TestContractTenantIsolation(t *testing.T) {
	s := startStack(t)
	first := s.postPayment("key-a", "iso-1", payment)
	mustPending(t, "tenant-a payment", first, false)
	opLoc := first.Header.Get("Location")
	recA := s.outcomeOf("key-a", opLoc)
	var pa struct{ ID string }
	_ = json.Unmarshal(recA.Body, &pa)
	refA := s.postRefund("key-a", "iso-r", pa.ID, `{"amount":100}`)
	mustPending(t, "tenant-a refund", refA, false)
	recRefA := s.outcomeOf("key-a", refA.Header.Get("Location"))
	mustEqual(t, "tenant-a refund", recRefA.Status, 201)
	var ra struct{ ID string }
	_ = json.Unmarshal(recRefA.Body, &ra)

	cases := []struct {
		name  string
		check func(t *testing.T, s *stack)
	}{
		{"OperationIs404", func(t *testing.T, s *stack) {
			mustProblem(t, "GET operation", s.do("GET", opLoc, "key-b", "", "", ""), 404, "/not-found")
		}},
		{"PaymentIs404", func(t *testing.T, s *stack) {
			mustProblem(t, "GET payment", s.do("GET", "/v1/payments/"+pa.ID, "key-b", "", "", ""), 404, "/not-found")
		}},
		{"RefundIs404", func(t *testing.T, s *stack) {
			mustProblem(t, "GET refund", s.do("GET", "/v1/payments/"+pa.ID+"/refunds/"+ra.ID, "key-b", "", "", ""), 404, "/not-found")
		}},
		{"CannotRefundRecorded404", func(t *testing.T, s *stack) {
			r := s.postRefund("key-b", "iso-r", pa.ID, `{"amount":100}`) // tenant-a's key and body, too
			mustPending(t, "tenant-b refund", r, false)
			rec := s.outcomeOf("key-b", r.Header.Get("Location"))
			mustEqual(t, "recorded", rec.Status, 404)
			retry := s.postRefund("key-b", "iso-r", pa.ID, `{"amount":100}`)
			mustProblem(t, "retry", retry, 404, "/not-found")
			mustReplay(t, "retry", retry, rec, "application/problem+json")
			mustEqual(t, "tenant-a can't see tenant-b's operation", s.do("GET", r.Header.Get("Location"), "key-a", "", "", "").Status, 404)
			mustEqual(t, "refunded_amount", s.countNow(`SELECT refunded_amount::INT FROM payments WHERE payment_id = $1`, pa.ID), 100)
			mustEqual(t, "refunds", s.countNow(`SELECT count(*) FROM refunds`), 1)
		}},
		{"SameKeySameBodyTwoCommands", func(t *testing.T, s *stack) {
			r := s.postPayment("key-b", "iso-1", payment)
			opB := mustPending(t, "tenant-b", r, false)
			if "/v1/operations/"+opB == opLoc {
				t.Fatal("tenant-b got tenant-a's operation")
			}
			rec := s.outcomeOf("key-b", r.Header.Get("Location"))
			mustEqual(t, "recorded", rec.Status, 201)
			if bytes.Equal(rec.Body, recA.Body) {
				t.Fatal("tenant-b got tenant-a's payment")
			}
			mustEqual(t, "payments", s.countNow(`SELECT count(*) FROM payments`), 2)
			mustEqual(t, "tenant-b payments", s.countNow(`SELECT count(*) FROM payments WHERE tenant_id = 'tenant-b'`), 1)
			// tenant-a's own retry still replays its own outcome.
			mustReplay(t, "tenant-a retry", s.postPayment("key-a", "iso-1", payment), recA, "application/json")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.check(t, s.on(t)) })
	}
}

// ---- Prefer: wait ----

func TestContractPreferWait(t *testing.T) {
	s := startStack(t)
	cases := []struct {
		name   string
		prefer []string
		amount int64 // 0: a fresh small amount
		want   int   // the outcome expected directly; 0: a 202
	}{
		{"Wait5AnswersTheOutcome", []string{"wait=5"}, 0, 201},
		{"Wait5AmongOtherPreferences", []string{"respond-async, wait=5"}, 0, 201},
		{"Wait5AtTheDeclineLimitSucceeds", []string{"wait=5"}, 1000000, 201},
		{"Wait5AnswersARecordedDecline", []string{"wait=5"}, 1000001, 402},
		{"Wait0Is202", []string{"wait=0"}, 0, 0},
		{"AbsentIs202", nil, 0, 0},
		{"RespondAsyncIs202", []string{"respond-async"}, 0, 0},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := s.on(t)
			amount := c.amount
			if amount == 0 {
				amount = int64(100 * (i + 1))
			}
			body := `{"amount":` + strconv.FormatInt(amount, 10) + `,"currency":"EUR","customer":"cus_w"}`
			extra := []string{}
			for _, p := range c.prefer {
				extra = append(extra, "Prefer", p)
			}
			attempts := 1
			if c.want != 0 {
				attempts = 3 // the projector is fast, but a loaded machine may exceed 5s once
			}
			directSeen := false
			for a := 0; a < attempts && !directSeen; a++ {
				key := "pw-" + c.name + "-" + strconv.Itoa(a)
				start := time.Now()
				r := s.postWith("/v1/payments", "key-a", []string{key}, body, extra...)
				if r.Status == 202 {
					mustPending(t, "answer", r, false)
					mustEqual(t, "Preference-Applied on a 202", r.Header.Get("Preference-Applied"), "")
					if c.want != 0 && time.Since(start) < 4900*time.Millisecond {
						t.Fatalf("202 after %v although the client would wait 5s", time.Since(start))
					}
					s.outcomeOf("key-a", r.Header.Get("Location"))
					continue
				}
				if c.want == 0 {
					t.Fatalf("status %d, want 202: %s", r.Status, r.Body)
				}
				directSeen = true
				mustEqual(t, "Preference-Applied", r.Header.Get("Preference-Applied"), "wait=5")
				mustEqual(t, "Idempotent-Replayed", r.Header.Get("Idempotent-Replayed"), "")
				ctype := "application/json"
				if c.want == 201 {
					mustEqual(t, "status", r.Status, 201)
					mustPaymentBody(t, r.Body, amount)
					var p struct{ ID string }
					_ = json.Unmarshal(r.Body, &p)
					mustEqual(t, "Location", r.Header.Get("Location"), "/v1/payments/"+p.ID)
				} else {
					mustProblem(t, "direct outcome", r, c.want, "/payment-declined")
					ctype = "application/problem+json"
				}
				// The direct answer is the recorded outcome, which retries replay.
				retry := s.postPayment("key-a", key, body)
				mustReplay(t, "retry", retry, recorded{Status: c.want, Body: r.Body}, ctype)
				mustEqual(t, "retry Location", retry.Header.Get("Location"), r.Header.Get("Location"))
			}
			if c.want != 0 && !directSeen {
				t.Fatalf("no direct answer in %d attempts with Prefer: %v", attempts, c.prefer)
			}
		})
	}
	// A wait above MaxWait (30 s) is capped, and says so.
	t.Run("RefundWaitAboveTheCap", func(t *testing.T) {
		s := s.on(t)
		pid, _ := s.createPayment("key-a", "pw-pay", payment)
		r := s.postWith("/v1/payments/"+pid+"/refunds", "key-a", []string{"pw-ref"}, `{"amount":10}`, "Prefer", "wait=45")
		mustEqual(t, "status", r.Status, 201)
		mustEqual(t, "Preference-Applied", r.Header.Get("Preference-Applied"), "wait=30")
		mustEqual(t, "refund for", strings.Contains(string(r.Body), `"payment_id":"`+pid+`"`), true)
	})
}

// mustPaymentBody checks the 201 body of payments.create has the
// contract's members.
func mustPaymentBody(t testing.TB, body []byte, amount int64) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("payment body %s: %v", body, err)
	}
	for _, k := range []string{"id", "operation_id", "status", "amount", "currency", "customer", "description", "refunded_amount", "created_at"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("payment body lacks %q: %s", k, body)
		}
	}
	var p struct {
		ID             string `json:"id"`
		OperationID    string `json:"operation_id"`
		Status         string `json:"status"`
		Amount         int64  `json:"amount"`
		RefundedAmount int64  `json:"refunded_amount"`
		CreatedAt      string `json:"created_at"`
	}
	_ = json.Unmarshal(body, &p)
	mustEqual(t, "id is a UUID", uuid.Validate(p.ID), nil)
	mustEqual(t, "operation_id is a UUID", uuid.Validate(p.OperationID), nil)
	mustEqual(t, "status", p.Status, "succeeded")
	mustEqual(t, "amount", p.Amount, amount)
	mustEqual(t, "refunded_amount", p.RefundedAmount, int64(0))
	if _, err := time.Parse(time.RFC3339Nano, p.CreatedAt); err != nil {
		t.Fatalf("created_at %q: %v", p.CreatedAt, err)
	}
}

// ---- retention ----

func TestContractRetention(t *testing.T) {
	const other = `{"amount":2000,"currency":"EUR","customer":"cus_x"}`
	// claimOf returns how many claims hold the key, and the operation of
	// the one claim.
	claimOf := func(s *stack, tenant, op, key string) (opID string, n int) {
		s.scanNow(`SELECT count(*), COALESCE(max(operation_id::TEXT), '') FROM idempotency_claims
WHERE tenant_id = $1 AND operation = $2 AND idem_key = $3`, []any{tenant, op, key}, &n, &opID)
		return opID, n
	}
	waitGone := func(s *stack, key, opID string) {
		testenv.Eventually(s.t, 8*time.Second, fmt.Sprintf("claim %s (%s) deleted by the janitor", key, opID), func() error {
			n := s.countNow(`SELECT count(*) FROM idempotency_claims WHERE idem_key = $1 AND operation_id = $2`, key, opID)
			return testenv.Check(n == 0, "still there")
		})
	}
	// applied waits for the payment that operation opID made and returns
	// its id and amount. With a 1s retention the janitor may forget the key
	// (and its recorded response) before a poll of the operation sees it
	// completed, so these rows wait on the effect, which stays.
	applied := func(s *stack, opID string) (id string, amount int64) {
		testenv.Eventually(s.t, 60*time.Second, "operation "+opID+" made a payment", func() error {
			var n int
			s.scanNow(`SELECT count(*), COALESCE(max(payment_id::TEXT), ''), COALESCE(max(amount), 0) FROM payments
WHERE operation_id = $1`, []any{opID}, &n, &id, &amount)
			return testenv.Check(n == 1, "%d payments", n)
		})
		return id, amount
	}
	cases := []struct {
		name    string
		env     []string
		apiOnly bool
		check   func(t *testing.T, s *stack)
	}{
		{"JanitorDeletesKeyThenItIsANewCommand",
			[]string{"IDEMGATE_RETENTION", "1s", "IDEMGATE_JANITOR_INTERVAL", "200ms"}, false,
			func(t *testing.T, s *stack) {
				first := s.postPayment("key-a", "ret-1", payment)
				oldOp := mustPending(t, "first", first, false)
				_, amount := applied(s, oldOp)
				mustEqual(t, "first amount", amount, int64(1000))
				waitGone(s, "ret-1", oldOp)
				r := s.postPayment("key-a", "ret-1", other) // a DIFFERENT body
				newOp := mustPending(t, "reuse", r, false)
				if newOp == oldOp {
					t.Fatal("the old operation was answered")
				}
				_, amount = applied(s, newOp)
				mustEqual(t, "new amount", amount, int64(2000))
				mustEqual(t, "payments", s.countNow(`SELECT count(*) FROM payments`), 2)
			}},
		{"ExpiredKeyNotYetDeletedIsANewCommand",
			[]string{"IDEMGATE_RETENTION", "1s", "IDEMGATE_JANITOR_INTERVAL", "1h"}, false,
			func(t *testing.T, s *stack) {
				first := s.postPayment("key-a", "ret-2", payment)
				oldOp := mustPending(t, "first", first, false)
				s.outcomeOf("key-a", first.Header.Get("Location"))
				s.expired("ret-2", 10*time.Second)
				if id, n := claimOf(s, "tenant-a", "payments.create", "ret-2"); n != 1 || id != oldOp {
					t.Fatalf("old claim: %d rows, operation %s", n, id)
				}
				r := s.postPayment("key-a", "ret-2", other)
				newOp := mustPending(t, "reuse", r, false)
				if newOp == oldOp {
					t.Fatal("the old operation was answered")
				}
				if id, n := claimOf(s, "tenant-a", "payments.create", "ret-2"); n != 1 || id != newOp {
					t.Fatalf("claim after reuse: %d rows, operation %s, want %s", n, id, newOp)
				}
				mustEqual(t, "new outcome", s.outcomeOf("key-a", r.Header.Get("Location")).Status, 201)
			}},
		{"PerOperationRetentionKeepsRefundKeys",
			[]string{"IDEMGATE_RETENTION", "1s", "IDEMGATE_JANITOR_INTERVAL", "200ms", "IDEMGATE_RETENTION_BY_OPERATION", "refunds.create=1h"}, false,
			func(t *testing.T, s *stack) {
				first := s.postPayment("key-a", "ret-3", payment)
				payOp := mustPending(t, "payment", first, false)
				paymentID, _ := applied(s, payOp)
				ref := s.postRefund("key-a", "ret-3r", paymentID, `{"amount":10}`)
				refOp := mustPending(t, "refund", ref, false)
				refRec := s.outcomeOf("key-a", ref.Header.Get("Location"))
				mustEqual(t, "refund outcome", refRec.Status, 201)
				waitGone(s, "ret-3", payOp) // the payment key expires after 1s...
				testenv.Eventually(t, 10*time.Second, "the refund key older than the default retention", func() error {
					n := s.countNow(`SELECT count(*) FROM idempotency_claims WHERE idem_key = 'ret-3r' AND created_at + INTERVAL '1 second' <= now()`)
					return testenv.Check(n == 1, "not yet")
				})
				s.janitorPass(10 * time.Second)
				if id, n := claimOf(s, "tenant-a", "refunds.create", "ret-3r"); n != 1 || id != refOp {
					t.Fatalf("refund claim: %d rows, operation %s", n, id) // ...the refund key is kept
				}
				mustProblem(t, "refund key, other body", s.postRefund("key-a", "ret-3r", paymentID, `{"amount":11}`), 409, "/idempotency-key-reused")
				mustReplay(t, "refund key, same body", s.postRefund("key-a", "ret-3r", paymentID, `{"amount":10}`), refRec, "application/json")
			}},
		{"PendingKeyOutlivesRetention",
			[]string{"IDEMGATE_RETENTION", "1s", "IDEMGATE_JANITOR_INTERVAL", "200ms"}, true,
			func(t *testing.T, s *stack) {
				first := s.postPayment("key-a", "ret-4", payment)
				op := mustPending(t, "first", first, false)
				s.expired("ret-4", 10*time.Second)
				s.janitorPass(10 * time.Second)
				if id, n := claimOf(s, "tenant-a", "payments.create", "ret-4"); n != 1 || id != op {
					t.Fatalf("pending claim: %d rows, operation %s", n, id)
				}
				mustProblem(t, "other body", s.postPayment("key-a", "ret-4", other), 409, "/idempotency-key-reused")
				mustEqual(t, "same body", mustPending(t, "same body", s.postPayment("key-a", "ret-4", payment), true), op)
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each row has its own stack; the rows mostly wait for clocks
			var s *stack
			if c.apiOnly {
				s = startAPIOnly(t, c.env...)
			} else {
				s = startStack(t, c.env...)
			}
			c.check(t, s)
		})
	}
}

// ---- operational endpoints and routing ----

func TestContractEndpoints(t *testing.T) {
	s := startStack(t)
	mustPending(t, "a command, so that the counters have a series", s.postPayment("key-a", "ep-1", payment), false)
	cases := []struct {
		name, method, path, apiKey string
		status                     int
		contentType                string // prefix
		contains                   string
		problem                    string // type suffix for problems
	}{
		{"Healthz", "GET", "/healthz", "", 200, "application/json", "", ""},
		{"Readyz", "GET", "/readyz", "", 200, "application/json", "", ""},
		{"OpenAPI", "GET", "/openapi.json", "", 200, "application/json", `"/v1/payments"`, ""},
		{"Metrics", "GET", "/metrics", "", 200, "text/plain", "idemgate_commands_accepted_total", ""},
		{"UnknownRoute", "GET", "/nope", "", 404, "application/problem+json", "", "/not-found"},
		{"UnknownV1Route", "GET", "/v1/nope", "key-a", 404, "application/problem+json", "", "/not-found"},
		{"GetOnPaymentsCollection", "GET", "/v1/payments", "key-a", 405, "application/problem+json", "", "/method-not-allowed"},
		{"DeleteOnPayment", "DELETE", "/v1/payments/" + uuid.NewString(), "key-a", 405, "application/problem+json", "", "/method-not-allowed"},
		{"UnknownPayment", "GET", "/v1/payments/" + uuid.NewString(), "key-a", 404, "application/problem+json", "", "/not-found"},
		{"NonUUIDPayment", "GET", "/v1/payments/xyz", "key-a", 404, "application/problem+json", "", "/not-found"},
		{"UnknownOperation", "GET", "/v1/operations/" + uuid.NewString(), "key-a", 404, "application/problem+json", "", "/not-found"},
		{"NonUUIDOperation", "GET", "/v1/operations/xyz", "key-a", 404, "application/problem+json", "", "/not-found"},
		{"OperationUnauthenticated", "GET", "/v1/operations/" + uuid.NewString(), "", 401, "application/problem+json", "", "/unauthorized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.on(t).do(c.method, c.path, c.apiKey, "", "", "")
			if c.problem != "" {
				mustProblem(t, c.name, r, c.status, c.problem)
				return
			}
			mustEqual(t, "status", r.Status, c.status)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, c.contentType) {
				t.Fatalf("Content-Type = %q, want %s", ct, c.contentType)
			}
			if c.contentType == "application/json" && !json.Valid(r.Body) {
				t.Fatalf("body is not JSON: %.200s", r.Body)
			}
			if !bytes.Contains(r.Body, []byte(c.contains)) {
				t.Fatalf("body lacks %q: %.300s", c.contains, r.Body)
			}
		})
	}
}
