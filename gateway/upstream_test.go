package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/testenv"
	"github.com/idemgate/idemgate/tracing"
)

// callOnce loads one route in front of srv and calls it once.
func callOnce(t *testing.T, upstreamURL, timeout, body string, cmd idemgate.Command) (idemgate.Response, error) {
	t.Helper()
	yaml := "routes:\n  - {operation: o.create, path: '/v1/o/{id}', upstream: '" + upstreamURL + "'"
	if timeout != "" {
		yaml += ", timeout: " + timeout
	}
	mod, err := Load(writeRoutes(t, yaml+"}\n", nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(body)
	cmd.Request = req
	// The projector calls with the command's trace in ctx.
	return mod.Operations[0].Call.Call(tracing.FromTraceParent(context.Background(), cmd.TraceParent), cmd, 1)
}

func TestCall(t *testing.T) {
	cmd := idemgate.Command{OperationID: "op-1", Tenant: "tenant-a", Operation: "o.create", Target: "a/b c", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	t.Run("OKHeadersAndBodyAsSent", func(t *testing.T) {
		var got *http.Request
		var gotBody string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r
			b := make([]byte, 100)
			n, _ := r.Body.Read(b)
			gotBody = string(b[:n])
			w.Header().Set("Content-Type", "application/vnd.x+json")
			w.Header().Set("Location", "/o/1")
			w.WriteHeader(201)
			_, _ = w.Write([]byte(`{"id": 1}`))
		}))
		defer srv.Close()
		resp, err := callOnce(t, srv.URL+"/orders/{id}", "", " {\"a\" : 1} ", cmd)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 201 || resp.ContentType != "application/vnd.x+json" || resp.Location != "/o/1" || string(resp.Body) != `{"id": 1}` {
			t.Fatalf("response %+v", resp)
		}
		for h, want := range map[string]string{"Idempotency-Key": "op-1", "Idemgate-Tenant": "tenant-a", "Idemgate-Operation": "o.create",
			"Content-Type": "application/json", "Traceparent": cmd.TraceParent, "Idemgate-Attempt": "1"} {
			if v := got.Header.Get(h); v != want {
				t.Errorf("%s = %q, want %q", h, v, want)
			}
		}
		if got.Method != "POST" || got.URL.EscapedPath() != "/orders/a%2Fb%20c" || gotBody != ` {"a" : 1} ` {
			t.Fatalf("%s %s with body %q", got.Method, got.URL.EscapedPath(), gotBody)
		}
	})
	for name, tc := range map[string]struct {
		status     int
		header     string
		retryable  bool
		retryAfter time.Duration
	}{
		"Final400":          {status: 400},
		"Final404":          {status: 404},
		"Final422":          {status: 422},
		"Final409":          {status: 409},
		"FinalRedirect":     {status: 303},
		"Retry500":          {status: 500, retryable: true},
		"Retry502":          {status: 502, retryable: true},
		"Retry503After":     {status: 503, header: "7", retryable: true, retryAfter: 7 * time.Second},
		"Retry408":          {status: 408, retryable: true},
		"Retry425":          {status: 425, retryable: true},
		"Retry429":          {status: 429, header: "2", retryable: true, retryAfter: 2 * time.Second},
		"Retry503BadHeader": {status: 503, header: "soon", retryable: true},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte("answer"))
			}))
			defer srv.Close()
			resp, err := callOnce(t, srv.URL+"/o", "", "{}", cmd)
			var retry *idemgate.RetryableError
			if tc.retryable {
				if !errors.As(err, &retry) || retry.After != tc.retryAfter {
					t.Fatalf("err = %v (after %v), want retryable after %v", err, retry, tc.retryAfter)
				}
				return
			}
			if err != nil || resp.Status != tc.status || string(resp.Body) != "answer" {
				t.Fatalf("response %d %q, err %v; want the final %d recorded", resp.Status, resp.Body, err, tc.status)
			}
		})
	}
	t.Run("RetryTimeout", func(t *testing.T) {
		gaveUp := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-gaveUp // no answer until the caller has given up
		}))
		defer srv.Close()
		defer close(gaveUp) // before Close, which waits for the handler
		_, err := callOnce(t, srv.URL+"/o", "100ms", "{}", cmd)
		var retry *idemgate.RetryableError
		if !errors.As(err, &retry) || !strings.Contains(err.Error(), "timeout") {
			t.Fatalf("err = %v, want a retryable timeout", err)
		}
	})
	t.Run("RetryConnectionRefused", func(t *testing.T) {
		// Held by the test, listened on by nobody: refused, and taken by
		// no other process meanwhile.
		port := testenv.NewPort(t)
		_, err := callOnce(t, "http://"+port.Addr()+"/o", "", "{}", cmd)
		var retry *idemgate.RetryableError
		if !errors.As(err, &retry) || !strings.Contains(err.Error(), "connection") {
			t.Fatalf("err = %v, want a retryable connection failure", err)
		}
	})
	t.Run("RetryConnectionDroppedBeforeTheAnswer", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}))
		defer srv.Close()
		_, err := callOnce(t, srv.URL+"/o", "", "{}", cmd)
		var retry *idemgate.RetryableError
		if !errors.As(err, &retry) {
			t.Fatalf("err = %v, want retryable", err)
		}
	})
	t.Run("TooLargeIsAppliedNotFailed", func(t *testing.T) {
		for status, says := range map[int]string{201: "applied the command and answered 201", 409: "answered 409, a final answer"} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "/orders/big")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(strings.Repeat("x", MaxResponseBytes+1)))
			}))
			resp, err := callOnce(t, srv.URL+"/o", "", "{}", cmd)
			srv.Close()
			var p idemgate.Problem
			if err != nil || json.Unmarshal(resp.Body, &p) != nil {
				t.Fatalf("response %d %s, err %v; want a recorded answer", resp.Status, resp.Body, err)
			}
			if resp.Status != status || resp.Location != "/orders/big" || resp.ContentType != idemgate.ContentTypeProblem ||
				!p.OfType(idemgate.ProblemUpstreamAnswerNotKept) || p.Status != status || !strings.Contains(p.Detail, says) {
				t.Fatalf("recorded %d (Location %q, %s) %+v; want the upstream's %d and Location, saying it %s",
					resp.Status, resp.Location, resp.ContentType, p, status, says)
			}
		}
	})
}
