package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type pinger struct{ err error }

func (p pinger) Ping(context.Context) error { return p.err }

// hangs answers only when its context ends.
type hangs struct{}

func (hangs) Ping(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func serve(h http.Handler, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestLiveHandler(t *testing.T) {
	w := serve(http.HandlerFunc(LiveHandler))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || w.Body.String() != `{"status":"ok"}` {
		t.Fatalf("/healthz: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

func TestReadyHandler(t *testing.T) {
	down := errors.New("down")
	for name, tc := range map[string]struct {
		deps   []Dependency
		status int
		body   map[string]any
	}{
		"Ready": {[]Dependency{{Name: "database", Check: pinger{}, Required: true}, {Name: "kafka", Check: pinger{}}},
			200, map[string]any{"status": "ready", "checks": map[string]any{"database": "ok", "kafka": "ok"}}},
		"OptionalDownIsDegraded": {[]Dependency{{Name: "database", Check: pinger{}, Required: true}, {Name: "kafka", Check: pinger{down}}},
			200, map[string]any{"status": "degraded", "checks": map[string]any{"database": "ok", "kafka": "unreachable"}}},
		"RequiredDownIsNotReady": {[]Dependency{{Name: "database", Check: pinger{down}, Required: true}, {Name: "kafka", Check: pinger{}}},
			503, map[string]any{"type": "https://idemgate.dev/problems/not-ready", "title": "Not ready", "status": float64(503),
				"detail": "a dependency this role needs is not reachable", "checks": map[string]any{"database": "unreachable", "kafka": "ok"}}},
		"RequiredHangingIsNotReadyWithinTheTimeout": {[]Dependency{{Name: "database", Check: hangs{}, Required: true}},
			503, map[string]any{"type": "https://idemgate.dev/problems/not-ready", "title": "Not ready", "status": float64(503),
				"detail": "a dependency this role needs is not reachable", "checks": map[string]any{"database": "unreachable"}}},
	} {
		t.Run(name, func(t *testing.T) {
			w := serve(ReadyHandler(tc.deps, 50*time.Millisecond))
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %s: %v", w.Body, err)
			}
			got, _ := json.Marshal(body)
			want, _ := json.Marshal(tc.body)
			if w.Code != tc.status || string(got) != string(want) {
				t.Fatalf("/readyz: %d %s, want %d %s", w.Code, got, tc.status, want)
			}
			ct, retry := w.Header().Get("Content-Type"), w.Header().Get("Retry-After")
			if tc.status == 503 && (ct != "application/problem+json" || retry != "1") ||
				tc.status == 200 && (ct != "application/json" || retry != "") {
				t.Fatalf("/readyz %d: Content-Type %q, Retry-After %q", w.Code, ct, retry)
			}
		})
	}
}

func TestProtect(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("secret")) })
	if w := serve(Protect(ok, "")); w.Code != 200 {
		t.Fatalf("no token set: %d, want 200 to anyone", w.Code)
	}
	h := Protect(ok, "tok")
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Basic tok"},
		{"Authorization", "Bearer "}, {"Authorization", "Bearer tok", "Authorization", "Bearer tok"}} {
		w := serve(h, hdr...)
		if w.Code != 401 || w.Header().Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(w.Body.String(), `"type":"https://idemgate.dev/problems/unauthorized"`) ||
			w.Header().Get("WWW-Authenticate") == "" || strings.Contains(w.Body.String(), "secret") {
			t.Errorf("Authorization %q: %d %s", hdr, w.Code, w.Body)
		}
	}
	for _, v := range []string{"Bearer tok", "bearer tok", "BEARER tok"} {
		if w := serve(h, "Authorization", v); w.Code != 200 || w.Body.String() != "secret" {
			t.Errorf("Authorization %q: %d, want 200", v, w.Code)
		}
	}
}

func TestMetricsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "idemgate_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Inc()
	if w := serve(MetricsHandler(reg, "tok")); w.Code != 401 {
		t.Fatalf("without the token: %d, want 401", w.Code)
	}
	w := serve(MetricsHandler(reg, "tok"), "Authorization", "Bearer tok")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "idemgate_test_total 1") {
		t.Fatalf("with the token: %d %s", w.Code, w.Body)
	}
}
