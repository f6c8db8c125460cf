package hostile

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/idemgate/idemgate/testenv"
)

// TestRequestDefects (finding 10, the smaller defects of the HTTP
// surface), on one stack whose /metrics are on addresses of their own,
// behind a token.
func TestRequestDefects(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	const token = "metrics-secret"
	s := newStack(t, "IDEMGATE_METRICS_TOKEN", token)
	sm, pm, rm := heldAddr(t), heldAddr(t), heldAddr(t)
	a := s.serve("IDEMGATE_METRICS_ADDR", sm)
	s.Project("IDEMGATE_METRICS_ADDR", pm)
	s.Relay("IDEMGATE_METRICS_ADDR", rm)

	opPath, payPath := a.completed("defects-1")

	t.Run("DuplicateAuthorizationIs401", func(t *testing.T) {
		for _, req := range []struct{ method, path, body string }{{"POST", "/v1/payments", payment}, {"GET", opPath, ""}} {
			// The same valid key twice, and a valid key beside an unknown one.
			for _, keys := range [][2]string{{"Bearer key-a", "Bearer key-a"}, {"Bearer key-a", "Bearer key-b"}, {"Bearer nope", "Bearer key-a"}} {
				r := testenv.Do(req.method, a.Base+req.path, req.body, "Authorization", keys[0], "Authorization", keys[1],
					"Idempotency-Key", "dup-auth", "Content-Type", "application/json")
				if r.Status != 401 {
					t.Errorf("%s %s with Authorization %q: %v, want 401", req.method, req.path, keys, r)
				}
			}
		}
		// The key was not consumed.
		if r := a.postPayment("dup-auth", payment); r.Status != 202 {
			t.Errorf("the key after the 401s: %v, want 202", r)
		}
	})

	t.Run("ContentEncodingIs415", func(t *testing.T) {
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		_, _ = w.Write([]byte(payment))
		_ = w.Close()
		for _, enc := range []string{"gzip", "deflate", "br", "identity, gzip"} {
			r := a.postPayment("gzip-1", gz.String(), "Content-Encoding", enc)
			if r.Status != 415 || !strings.Contains(string(r.Body), "encoding") {
				t.Errorf("Content-Encoding %q: %v, want 415", enc, r)
			}
		}
		if r := a.postPayment("gzip-1", payment, "Content-Encoding", "identity"); r.Status != 202 {
			t.Errorf("Content-Encoding identity, the same key: %v, want 202 (the 415s consumed no key)", r)
		}
	})

	t.Run("HEADWhereverGET", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/openapi.json", opPath, payPath,
			"/v1/operations/00000000-0000-4000-8000-000000000000", "/v1/payments/nope"} {
			get := a.get(path)
			head := testenv.Do("HEAD", a.Base+path, "", "Authorization", "Bearer key-a")
			if head.Err != nil || head.Status != get.Status {
				t.Errorf("HEAD %s: %v; GET answered %d", path, head, get.Status)
				continue
			}
			if len(head.Body) != 0 {
				t.Errorf("HEAD %s: a body of %d bytes", path, len(head.Body))
			}
			if g, h := headerSet(get.Header), headerSet(head.Header); g != h {
				t.Errorf("HEAD %s headers:\n  %s\nGET:\n  %s", path, h, g)
			}
		}
	})

	t.Run("MetricsOnTheirOwnAddressBehindAToken", func(t *testing.T) {
		if r := testenv.Do("GET", a.Base+"/metrics", ""); r.Status != 404 {
			t.Errorf("GET /metrics on the API's port: %v, want 404 (served on IDEMGATE_METRICS_ADDR)", r)
		}
		for name, c := range map[string]struct{ addr, metric string }{"serve": {sm, "idemgate_requests_in_flight"},
			"project": {pm, "idemgate_completion_latency_seconds"}, "relay": {rm, "idemgate_relay_backlog"}} {
			url := "http://" + c.addr + "/metrics"
			for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Basic " + token},
				{"Authorization", "Bearer " + token, "Authorization", "Bearer " + token}} {
				if r := testenv.Do("GET", url, "", hdr...); r.Status != 401 {
					t.Errorf("%s /metrics with %q: %v, want 401", name, hdr, r)
				}
			}
			r := testenv.Do("GET", url, "", "Authorization", "Bearer "+token)
			if r.Status != 200 || !strings.Contains(string(r.Body), c.metric) {
				t.Errorf("%s /metrics with the token: %d, want 200 with %s", name, r.Status, c.metric)
			}
		}
		m := scrape(t, "http://"+sm+"/metrics", token)
		if v, _ := m.sum("idemgate_commands_accepted_total"); v < 1 {
			t.Errorf("serve's idemgate_commands_accepted_total = %v", v)
		}
	})
}

// headerSet renders the headers a HEAD must share with its GET (all but
// the date).
func headerSet(h http.Header) string {
	var parts []string
	for k, vs := range h {
		if k != "Date" && k != "X-Request-Id" && k != "Traceresponse" { // per request, by design
			parts = append(parts, k+": "+strings.Join(vs, ", "))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n  ")
}
