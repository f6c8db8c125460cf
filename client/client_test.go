package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// rawBody is sent as is: odd spacing shows that retries resend the very
// bytes, not a re-encoding.
var rawBody = []byte(`{"amount": 1000,  "currency":"EUR","customer":"cus_1"}`)

func TestProblemsAreTypedErrors(t *testing.T) {
	replayed := map[string]string{"Idempotent-Replayed": "true"}
	waited := map[string]string{"Preference-Applied": "wait=10"}
	cases := []struct {
		name      string
		status    int
		kind      Kind
		headers   map[string]string
		completed bool
	}{
		{"key reused 409", 409, ErrKeyReused, nil, false},
		{"key reused 422", 422, ErrKeyReused, nil, false},
		{"validation", 422, ErrValidation, nil, false},
		{"unauthorized", 401, ErrUnauthorized, nil, false},
		{"key missing", 400, ErrKeyMissing, nil, false},
		{"declined, replayed", 402, ErrPaymentDeclined, replayed, true},
		{"declined, awaited", 402, ErrPaymentDeclined, waited, true},
		{"refund too large", 422, ErrRefundExceedsPayment, replayed, true},
		{"unknown payment", 404, ErrNotFound, replayed, true},
		{"processing failed", 500, ErrProcessingFailed, replayed, true},
		{"upstream failed, replayed", 502, ErrUpstreamFailed, replayed, true},
		{"upstream failed, awaited", 502, ErrUpstreamFailed, waited, true},
		{"upstream failed, unmarked", 502, ErrUpstreamFailed, nil, true},
		{"recorded 503 of a gateway upstream", 503, ErrUnavailable, replayed, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				writeProblemAnswer(w, tc.status, string(tc.kind), tc.headers)
			})
			c := newTestClient(t, f, nil)
			res, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{IdempotencyKey: "k-1"})
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("error %v (%T) is not a *Problem", err, err)
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("errors.Is(%v, %s) is false", err, tc.kind)
			}
			for _, other := range []Kind{ErrKeyReused, ErrValidation, ErrUnauthorized, ErrNotFound, ErrUpstreamFailed, ErrProcessingFailed} {
				if other != tc.kind && errors.Is(err, other) {
					t.Fatalf("errors.Is(%v, %s) holds too", err, other)
				}
			}
			if p.Status != tc.status || p.Type != ProblemBase+string(tc.kind) || p.Title != "T "+string(tc.kind) || p.Detail != "d "+string(tc.kind) {
				t.Fatalf("problem %+v", p)
			}
			if res == nil || p.Result != res || res.StatusCode != tc.status || res.IdempotencyKey != "k-1" {
				t.Fatalf("result %+v, problem's result %+v", res, p.Result)
			}
			if !bytes.HasPrefix(res.Body, []byte(`{"type":"`+ProblemBase+string(tc.kind))) || res.ContentType() != "application/problem+json" {
				t.Fatalf("raw answer %q (%s)", res.Body, res.ContentType())
			}
			if p.Completed() != tc.completed || res.Replayed != (tc.headers["Idempotent-Replayed"] == "true") {
				t.Fatalf("completed %v replayed %v, want completed %v", p.Completed(), res.Replayed, tc.completed)
			}
			if n := len(f.requests()); n != 1 {
				t.Fatalf("%d requests for a final answer, want 1", n)
			}
		})
	}
}

func TestAnswerThatIsNotAProblem(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("upstream says no"))
	})
	c := newTestClient(t, f, nil)
	res, err := c.Call(context.Background(), "/gw/orders", []byte(`{}`), CallOptions{})
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %v is not a *Problem", err)
	}
	if p.Type != "about:blank" || p.Status != 400 || p.Title != "Bad Request" || p.Kind() != "" {
		t.Fatalf("problem %+v", p)
	}
	if string(res.Body) != "upstream says no" || !res.Completed {
		t.Fatalf("result %+v", res)
	}
}

func TestRetryAfterIsHonouredWithTheSameKeyAndBytes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		after  func() string
	}{
		{"503 delta-seconds", 503, func() string { return "1" }},
		{"429 delta-seconds", 429, func() string { return "1" }},
		{"503 HTTP date", 503, func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					writeProblemAnswer(w, tc.status, "unavailable", map[string]string{"Retry-After": tc.after()})
					return
				}
				writeJSONAnswer(w, 201, paymentBody, map[string]string{"Location": "/v1/payments/" + testPaymentID})
			})
			c := newTestClient(t, f, func(cfg *Config) { cfg.Wait = 5 * time.Second })
			p := recordPauses(c)
			res, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{IdempotencyKey: "retry-after-1"})
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 201 || string(res.Body) != paymentBody || !res.Completed {
				t.Fatalf("result %+v", res)
			}
			reqs := f.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			// The backoff alone is at most 1 ms here: only Retry-After
			// explains a pause of a second (the date: one or two, as
			// it is rounded down to the second).
			delays, _ := p.seen()
			if len(delays) != 1 || delays[0] < time.Second || delays[0] > 2*time.Second || tc.name != "503 HTTP date" && delays[0] != time.Second {
				t.Fatalf("paused %v before the retry, want the advertised Retry-After", delays)
			}
			for i, r := range reqs {
				if r.header.Get("Idempotency-Key") != "retry-after-1" || !bytes.Equal(r.body, rawBody) ||
					r.header.Get("Prefer") != "wait=5" || r.header.Get("Authorization") != "Bearer test-key" {
					t.Fatalf("attempt %d: key %q prefer %q body %q", i+1, r.header.Get("Idempotency-Key"), r.header.Get("Prefer"), r.body)
				}
			}
		})
	}
}

func TestInfrastructureFailuresAreRetried(t *testing.T) {
	for _, status := range []int{429, 502, 503, 504} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFake(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n <= 2 {
					w.WriteHeader(status) // a proxy's bare answer
					return
				}
				writeJSONAnswer(w, 201, paymentBody, nil)
			})
			c := newTestClient(t, f, nil)
			if _, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{IdempotencyKey: "k"}); err != nil {
				t.Fatal(err)
			}
			if n := len(f.requests()); n != 3 {
				t.Fatalf("%d requests, want 3", n)
			}
		})
	}
}

func TestConnectionFailuresAreRetried(t *testing.T) {
	f := newFake(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close() // the request arrived; the answer never leaves
			}
			return
		}
		writeJSONAnswer(w, 201, paymentBody, nil)
	})
	c := newTestClient(t, f, nil)
	res, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) < 3 {
		t.Fatalf("%d requests, want at least 3", len(reqs))
	}
	for i, r := range reqs {
		if r.header.Get("Idempotency-Key") != res.IdempotencyKey || !bytes.Equal(r.body, rawBody) {
			t.Fatalf("attempt %d sent key %q body %q, want %q %q", i+1, r.header.Get("Idempotency-Key"), r.body, res.IdempotencyKey, rawBody)
		}
	}
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	cut := make(chan bool, 1) // whether the client gave up the hung attempt
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select { // a server that stopped answering
			case <-r.Context().Done():
				cut <- true
			case <-time.After(30 * time.Second):
				cut <- false
			}
			return
		}
		writeJSONAnswer(w, 201, paymentBody, nil)
	})
	c := newTestClient(t, f, func(cfg *Config) { cfg.AttemptTimeout = 100 * time.Millisecond })
	if _, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	if !<-cut {
		t.Fatal("the hung attempt was not cut at AttemptTimeout: the server never saw it go")
	}
}

func TestNoRetryOfOther4xxAnd5xx(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 409, 413, 415, 422, 500, 501} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				writeProblemAnswer(w, status, "whatever", nil)
			})
			c := newTestClient(t, f, nil)
			_, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{})
			var p *Problem
			if !errors.As(err, &p) || p.Status != status {
				t.Fatalf("error %v", err)
			}
			if n := len(f.requests()); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
		})
	}
}

func TestRetriesExhausted(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeProblemAnswer(w, 503, "unavailable", nil)
	})
	c := newTestClient(t, f, func(cfg *Config) { cfg.Retry.MaxAttempts = 3 })
	res, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{IdempotencyKey: "k-exhaust"})
	if res != nil {
		t.Fatalf("result %+v without a final answer", res)
	}
	var inc *IncompleteError
	if !errors.As(err, &inc) || inc.IdempotencyKey != "k-exhaust" || inc.OperationID != "" {
		t.Fatalf("error %v (%T)", err, err)
	}
	var re *RetryError
	if !errors.Is(err, ErrRetriesExhausted) || !errors.As(err, &re) || re.Attempts != 3 {
		t.Fatalf("error %v is not a RetryError of 3 attempts", err)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the last failure (503 unavailable) is not in %v", err)
	}
	if n := len(f.requests()); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestRetryAfterBeyondTheBudgetGivesUpAtOnce(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeProblemAnswer(w, 503, "unavailable", map[string]string{"Retry-After": "3600"})
	})
	c := newTestClient(t, f, nil)
	p := recordPauses(c)
	_, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{})
	if !errors.Is(err, ErrRetriesExhausted) {
		t.Fatalf("error %v", err)
	}
	if delays, _ := p.seen(); len(delays) != 0 {
		t.Fatalf("paused %v: it should give up at once", delays)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestAwaitPollsTheOperationUntilCompleted(t *testing.T) {
	loc := "/v1/operations/" + testOpID
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch {
		case n == 1:
			writeJSONAnswer(w, 202, pendingBody, map[string]string{"Location": loc, "Retry-After": "1"})
		case r.Method == http.MethodGet && n == 2:
			writeJSONAnswer(w, 200, pendingBody, map[string]string{"Retry-After": "1"})
		case r.Method == http.MethodGet && n <= 4:
			writeJSONAnswer(w, 200, pendingBody, nil)
		case r.Method == http.MethodGet:
			writeJSONAnswer(w, 200, `{"operation_id":"`+testOpID+`","status":"completed","response":{"status":201,"body":`+paymentBody+`}}`, nil)
		default:
			writeJSONAnswer(w, 201, paymentBody, map[string]string{"Location": "/v1/payments/" + testPaymentID, "Idempotent-Replayed": "true"})
		}
	})
	c := newTestClient(t, f, nil)
	p := recordPauses(c)
	res, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{IdempotencyKey: "k-poll"})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 201 || !res.Replayed || !res.Completed || res.OperationID != testOpID ||
		res.Location() != "/v1/payments/"+testPaymentID || res.ContentType() != "application/json" || string(res.Body) != paymentBody {
		t.Fatalf("result %+v", res)
	}
	reqs := f.requests()
	var got []string
	for _, r := range reqs {
		got = append(got, r.method+" "+r.path)
	}
	want := []string{"POST /v1/payments", "GET " + loc, "GET " + loc, "GET " + loc, "GET " + loc, "POST /v1/payments"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("requests %v, want %v", got, want)
	}
	// Each poll waits the last answer's Retry-After (1 s after the 202,
	// 1 s after the first poll), and PollInterval (10 ms) when it has none.
	if delays, _ := p.seen(); fmt.Sprint(delays) != "[1s 1s 10ms 10ms]" {
		t.Fatalf("paused %v before the polls, want [1s 1s 10ms 10ms]", delays)
	}
	for _, i := range []int{0, 5} {
		if reqs[i].header.Get("Idempotency-Key") != "k-poll" || !bytes.Equal(reqs[i].body, rawBody) {
			t.Fatalf("POST %d: key %q body %q", i, reqs[i].header.Get("Idempotency-Key"), reqs[i].body)
		}
	}
	if reqs[1].header.Get("Authorization") != "Bearer test-key" {
		t.Fatalf("poll without the API key")
	}
}

func TestNoAwaitReturnsThePending202(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeJSONAnswer(w, 202, pendingBody, map[string]string{"Location": "/v1/operations/" + testOpID, "Retry-After": "1"})
	})
	c := newTestClient(t, f, nil)
	pay, res, err := c.CreatePayment(context.Background(), NewPayment{Amount: 1, Currency: "EUR", Customer: "c"}, CallOptions{NoAwait: true})
	if err != nil || pay != nil {
		t.Fatalf("payment %+v error %v", pay, err)
	}
	if !res.Pending() || res.Completed || res.OperationID != testOpID || res.Location() != "/v1/operations/"+testOpID {
		t.Fatalf("result %+v", res)
	}
}

func TestAbsoluteLocationIsPolledOnTheBaseHost(t *testing.T) {
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch {
		case n == 1:
			writeJSONAnswer(w, 202, pendingBody, map[string]string{"Location": "http://elsewhere.invalid/v1/operations/" + testOpID, "Retry-After": "0"})
		case r.Method == http.MethodGet:
			writeJSONAnswer(w, 200, `{"operation_id":"`+testOpID+`","status":"completed","response":{"status":201,"body":{}}}`, nil)
		default:
			writeJSONAnswer(w, 201, `{}`, map[string]string{"Idempotent-Replayed": "true"})
		}
	})
	c := newTestClient(t, f, nil)
	if _, err := c.Call(context.Background(), "/v1/x", []byte(`{}`), CallOptions{}); err != nil {
		t.Fatal(err)
	}
	if reqs := f.requests(); len(reqs) != 3 || reqs[1].path != "/v1/operations/"+testOpID {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestPreferWaitIsSent(t *testing.T) {
	cases := []struct {
		name       string
		configWait time.Duration
		callWait   time.Duration
		want       string
	}{
		{"default", 0, 0, "wait=10"},
		{"configured", 20 * time.Second, 0, "wait=20"},
		{"per call", 0, 3 * time.Second, "wait=3"},
		{"rounded up", 0, 1500 * time.Millisecond, "wait=2"},
		{"disabled", -1, 0, ""},
		{"disabled per call", 0, -1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				h := map[string]string{}
				if p := r.Header.Get("Prefer"); p != "" {
					h["Preference-Applied"] = p
				}
				writeJSONAnswer(w, 201, paymentBody, h)
			})
			c := newTestClient(t, f, func(cfg *Config) { cfg.Wait = tc.configWait })
			res, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{Wait: tc.callWait})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.requests()[0].header.Get("Prefer"); got != tc.want {
				t.Fatalf("Prefer %q, want %q", got, tc.want)
			}
			if !res.Completed || res.Replayed {
				t.Fatalf("result %+v", res)
			}
		})
	}
	t.Run("above the maximum", func(t *testing.T) {
		f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
		c := newTestClient(t, f, nil)
		if _, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{Wait: 31 * time.Second}); err == nil {
			t.Fatal("a wait of 31s was accepted")
		}
		if n := len(f.requests()); n != 0 {
			t.Fatalf("%d requests", n)
		}
	})
}

func alwaysPending(_ int, w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		writeJSONAnswer(w, 200, pendingBody, nil)
		return
	}
	writeJSONAnswer(w, 202, pendingBody, map[string]string{"Location": "/v1/operations/" + testOpID, "Retry-After": "0"})
}

func TestCancellationStopsPolling(t *testing.T) {
	f := newFake(t, alwaysPending)
	c := newTestClient(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	p := recordPauses(c)
	p.then = func(n int) {
		if n == 3 {
			cancel() // during the third pause between polls
		}
	}
	res, err := c.Call(ctx, "/v1/payments", rawBody, CallOptions{IdempotencyKey: "k-cancel"})
	var inc *IncompleteError
	if res != nil || !errors.Is(err, context.Canceled) || !errors.As(err, &inc) {
		t.Fatalf("result %v error %v", res, err)
	}
	if inc.IdempotencyKey != "k-cancel" || inc.OperationID != testOpID {
		t.Fatalf("incomplete %+v", inc)
	}
	if n := len(f.requests()); n != 3 {
		t.Fatalf("%d requests, want 3: the POST and two polls, none after the cancellation", n)
	}
}

func TestCancellationStopsBackoff(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeProblemAnswer(w, 503, "unavailable", map[string]string{"Retry-After": "5"})
	})
	c := newTestClient(t, f, func(cfg *Config) { cfg.Retry.MaxElapsed = time.Minute })
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	p := recordPauses(c)
	p.then = func(int) { cancel(context.DeadlineExceeded) } // the deadline passes during the backoff
	_, err := c.Call(ctx, "/v1/payments", rawBody, CallOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	if delays, errs := p.seen(); fmt.Sprint(delays) != "[5s]" || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("pauses %v ending %v, want one of 5s (Retry-After) cut by the context", delays, errs)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d requests", n)
	}
}

func TestMaxAwait(t *testing.T) {
	f := newFake(t, alwaysPending)
	c := newTestClient(t, f, func(cfg *Config) { cfg.MaxAwait = 150 * time.Millisecond })
	_, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{})
	var inc *IncompleteError
	if !errors.Is(err, ErrStillPending) || !errors.As(err, &inc) || inc.OperationID != testOpID {
		t.Fatalf("error %v", err)
	}
}

// TestOutcomeUnknownStopsWaiting: an operation set aside as outcome
// unknown ends the wait at once with ErrOutcomeUnknown and the key to
// call again with, instead of polling until MaxAwait.
func TestOutcomeUnknownStopsWaiting(t *testing.T) {
	unknown := `{"operation_id":"` + testOpID + `","status":"outcome_unknown"}`
	f := newFake(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			writeJSONAnswer(w, 200, unknown, nil)
			return
		}
		writeJSONAnswer(w, 202, unknown, map[string]string{"Location": "/v1/operations/" + testOpID, "Retry-After": "0"})
	})
	c := newTestClient(t, f, func(cfg *Config) { cfg.MaxAwait = time.Minute })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recordPauses(c).then = func(n int) {
		if n > 5 {
			cancel() // it polls on: end the test's wait, the check below fails
		}
	}
	_, err := c.Call(ctx, "/v1/payments", rawBody, CallOptions{IdempotencyKey: "k-unknown"})
	var inc *IncompleteError
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &inc) || inc.OperationID != testOpID || inc.IdempotencyKey != "k-unknown" {
		t.Fatalf("error %v", err)
	}
	if n := len(f.requests()); n > 2 {
		t.Fatalf("%d requests: it polled on instead of stopping at the first outcome_unknown", n)
	}
}

func TestGeneratedKeyIsAUUIDv4AndReturned(t *testing.T) {
	f := newFake(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		writeJSONAnswer(w, 201, paymentBody, nil)
	})
	c := newTestClient(t, f, nil)
	res, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := uuid.Parse(res.IdempotencyKey)
	if err != nil || u.Version() != 4 {
		t.Fatalf("key %q is not a UUIDv4", res.IdempotencyKey)
	}
	for _, r := range f.requests() {
		if r.header.Get("Idempotency-Key") != res.IdempotencyKey {
			t.Fatalf("sent key %q, returned %q", r.header.Get("Idempotency-Key"), res.IdempotencyKey)
		}
	}
	other, _ := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{})
	if other.IdempotencyKey == res.IdempotencyKey {
		t.Fatal("two calls generated the same key")
	}
}

func TestBadKeyIsRefusedBeforeSending(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) })
	c := newTestClient(t, f, nil)
	for _, key := range []string{"a\nb", strings.Repeat("k", 256), "clé"} {
		if _, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{IdempotencyKey: key}); err == nil {
			t.Fatalf("key %q accepted", key)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestBaseURLPathPrefix(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) { writeJSONAnswer(w, 201, `{}`, nil) })
	c := newTestClient(t, f, func(cfg *Config) { cfg.BaseURL = f.URL + "/idemgate/" })
	if _, err := c.Call(context.Background(), "/v1/payments", rawBody, CallOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := f.requests()[0].path; p != "/idemgate/v1/payments" {
		t.Fatalf("path %q", p)
	}
}

func TestCallerHeaders(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) { writeJSONAnswer(w, 201, `{}`, nil) })
	c := newTestClient(t, f, nil)
	h := http.Header{}
	h.Set("X-Tenant-Region", "eu")
	h.Set("Accept", "application/vnd.shop+json")
	h.Set("Authorization", "Bearer stolen")
	h.Set("Idempotency-Key", "not-this-one")
	if _, err := c.Call(context.Background(), "/gw/orders", []byte(`{}`), CallOptions{IdempotencyKey: "mine", Header: h}); err != nil {
		t.Fatal(err)
	}
	got := f.requests()[0].header
	if got.Get("X-Tenant-Region") != "eu" || got.Get("Accept") != "application/vnd.shop+json" ||
		got.Get("Authorization") != "Bearer test-key" || got.Get("Idempotency-Key") != "mine" ||
		got.Get("Content-Type") != "application/json" || got.Get("User-Agent") != "idemgate-go-client" {
		t.Fatalf("headers %v", got)
	}
}
