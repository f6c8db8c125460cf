package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// seen is one request as the fake server received it.
type seen struct {
	at     time.Time
	method string
	path   string // as sent, escapes kept
	header http.Header
	body   []byte
}

// fake is an HTTP server scripted by a handler that also sees the number
// of the request (1-based); it records every request.
type fake struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newFake(t *testing.T, h func(n int, w http.ResponseWriter, r *http.Request)) *fake {
	t.Helper()
	f := &fake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, seen{at: time.Now(), method: r.Method, path: r.URL.EscapedPath(), header: r.Header.Clone(), body: b})
		n := len(f.reqs)
		f.mu.Unlock()
		h(n, w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

// newTestClient is a client of f with fast retries, overridable by edit.
func newTestClient(t *testing.T, f *fake, edit func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		BaseURL: f.URL,
		APIKey:  "test-key",
		Retry:   RetryPolicy{MaxAttempts: 5, MaxElapsed: 10 * time.Second, BaseBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
		Wait:    -1,
		// PollInterval applies only when the server sends no Retry-After.
		PollInterval: 10 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeProblemAnswer(w http.ResponseWriter, status int, name string, extra map[string]string) {
	for k, v := range extra {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"type":"`+ProblemBase+name+`","title":"T `+name+`","status":`+strconv.Itoa(status)+`,"detail":"d `+name+`"}`)
}

func writeJSONAnswer(w http.ResponseWriter, status int, body string, extra map[string]string) {
	for k, v := range extra {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

const (
	testOpID      = "3f0c2a5e-0000-4000-8000-000000000001"
	testPaymentID = "587b0000-0000-5000-8000-000000000002"
	paymentBody   = `{"id":"` + testPaymentID + `","operation_id":"` + testOpID + `","status":"succeeded","amount":1000,"currency":"EUR","customer":"cus_1","description":null,"refunded_amount":0,"created_at":"2026-01-02T03:04:05.123456Z"}`
	pendingBody   = `{"operation_id":"` + testOpID + `","status":"pending"}`
)

// pauses records each wait the client makes (c.pause) instead of
// waiting: a test checks the delays the client chose, not the clock.
type pauses struct {
	mu     sync.Mutex
	delays []time.Duration
	errs   []error // what each pause returned
	// then, when set, is called on each pause, with its number (1-based),
	// before it returns; it may cancel the call's context.
	then func(n int)
}

func recordPauses(c *Client) *pauses {
	p := &pauses{}
	c.pause = func(ctx context.Context, d time.Duration) error {
		p.mu.Lock()
		p.delays = append(p.delays, d)
		n := len(p.delays)
		then := p.then
		p.mu.Unlock()
		if then != nil {
			then(n)
		}
		err := ctx.Err()
		p.mu.Lock()
		p.errs = append(p.errs, err)
		p.mu.Unlock()
		return err
	}
	return p
}

func (p *pauses) seen() (delays []time.Duration, errs []error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.delays...), append([]error(nil), p.errs...)
}
