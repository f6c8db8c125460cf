// Package command is idemgate's HTTP API: it authenticates the tenant,
// validates the request, fingerprints its canonical form, claims the
// idempotency key in one SQL transaction, emits the command event and
// answers 202, and replays the recorded response to clients that retry.
package command

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/idemgate/idemgate/fault"
)

// Checker reports whether a dependency answers; /readyz asks each.
type Checker interface {
	Ping(ctx context.Context) error
}

// Config holds the API's settings and dependencies.
type Config struct {
	// APIKeys maps each bearer API key to its tenant.
	APIKeys map[string]string
	// MismatchStatus answers a key reused with a different body: 409 by
	// default, 422 as the IETF draft says.
	MismatchStatus int
	Claims         *Claims
	Emitter        *Emitter
	Reads          *Reads
	Ready          map[string]Checker
	Registry       *prometheus.Registry
	Faults         *fault.Injector
	Logger         *slog.Logger
}

// API serves the HTTP contract.
type API struct {
	keys           map[[32]byte]string
	mismatchStatus int
	claims         *Claims
	emitter        *Emitter
	reads          *Reads
	ready          map[string]Checker
	registry       *prometheus.Registry
	metrics        *metrics
	faults         *fault.Injector
	logger         *slog.Logger
}

// New returns the API.
func New(cfg Config) *API {
	a := &API{
		keys:           make(map[[32]byte]string, len(cfg.APIKeys)),
		mismatchStatus: cfg.MismatchStatus,
		claims:         cfg.Claims,
		emitter:        cfg.Emitter,
		reads:          cfg.Reads,
		ready:          cfg.Ready,
		registry:       cfg.Registry,
		faults:         cfg.Faults,
		logger:         cfg.Logger,
	}
	if a.mismatchStatus == 0 {
		a.mismatchStatus = http.StatusConflict
	}
	if a.logger == nil {
		a.logger = slog.Default()
	}
	if a.registry == nil {
		a.registry = prometheus.NewRegistry()
	}
	a.metrics = newMetrics(a.registry)
	for k, tenant := range cfg.APIKeys {
		a.keys[sha256.Sum256([]byte(k))] = tenant
	}
	return a
}

// Handler returns the router.
func (a *API) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeProblem(w, errNotFound("this resource")) })
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110 15.5.6: a 405 lists the methods the resource supports
		// (chi's own 405 does, a custom one has to).
		if allow := allowedMethods(r, req); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeProblem(w, NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed", req.Method+" is not allowed here"))
	})
	r.Get("/healthz", a.healthz)
	r.Get("/readyz", a.readyz)
	r.Get("/openapi.json", a.openapi)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	r.Route("/v1", func(r chi.Router) {
		r.Use(a.authenticate)
		r.Post("/payments", a.createPayment)
		r.Get("/payments/{paymentID}", a.getPayment)
		r.Post("/payments/{paymentID}/refunds", a.createRefund)
		r.Get("/payments/{paymentID}/refunds/{refundID}", a.getRefund)
		r.Get("/operations/{operationID}", a.getOperation)
	})
	return r
}

// allowedMethods lists the methods routes serves for req's path, for the
// Allow header of a 405.
func allowedMethods(routes chi.Routes, req *http.Request) string {
	path := req.URL.RawPath
	if path == "" {
		path = req.URL.Path
	}
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace} {
		if routes.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}

type tenantKey struct{}

// authenticate maps the bearer API key to its tenant.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const prefix = "Bearer "
		h := r.Header.Get("Authorization")
		if len(h) <= len(prefix) || !equalFoldASCII(h[:len(prefix)], prefix) {
			a.metrics.rejected.WithLabelValues("401").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="idemgate"`)
			writeProblem(w, errUnauthorized())
			return
		}
		tenant, ok := a.keys[sha256.Sum256([]byte(h[len(prefix):]))]
		if !ok {
			a.metrics.rejected.WithLabelValues("401").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="idemgate", error="invalid_token"`)
			writeProblem(w, errUnauthorized())
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, tenant)))
	})
}

func tenantOf(r *http.Request) string { return r.Context().Value(tenantKey{}).(string) }

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	for name, c := range a.ready {
		if err := c.Ping(r.Context()); err != nil {
			writeProblem(w, NewProblem(http.StatusServiceUnavailable, "not-ready", "Not ready", name+" is not reachable"))
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ready"}`))
}
