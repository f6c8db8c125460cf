// Package command is idemgate's HTTP API: it authenticates the tenant,
// validates the request, fingerprints its canonical form, claims the
// idempotency key in one SQL transaction, emits the command event and
// answers 202, and replays the recorded response to clients that retry.
// Its POST routes are the registry's operations; it knows none of them.
package command

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/health"
	"github.com/idemgate/idemgate/logging"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/tracing"
)

// Emitter sends an accepted command's event to Kafka without making the
// request wait (emit.Emitter does).
type Emitter interface {
	Emit(ctx context.Context, cmd idemgate.Command)
}

// Config holds the API's settings and dependencies.
type Config struct {
	// Registry lists the operations whose routes the API serves.
	Registry *idemgate.Registry
	Store    *store.Store
	Emitter  Emitter
	// APIKeys maps the SHA-256 of each bearer API key to its tenant.
	APIKeys map[[32]byte]string
	// MismatchStatus answers a key reused with a different body:
	// DefaultMismatchStatus (409), or 422 as the IETF draft says.
	MismatchStatus int
	// Retention says how long an operation's completed keys are kept
	// (an idemgate.Retention's For). Default: idemgate.Retention{}.For,
	// the operation's own Retention, else idemgate.DefaultRetention.
	Retention func(idemgate.Operation) time.Duration
	// Ready lists what /readyz checks.
	Ready   []health.Dependency
	Metrics *prometheus.Registry
	Faults  *fault.Injector
	Logger  *slog.Logger
	// DBTimeout bounds each request's work in the database (default
	// DefaultDBTimeout):
	// a hung database gets a 503 with Retry-After in that time.
	DBTimeout time.Duration
	// ClaimConcurrency is how many claim transactions run at once
	// (default DefaultClaimConcurrency); claims arriving meanwhile share
	// the next one.
	ClaimConcurrency int
	// ClaimSpillAfter is how long a claim transaction runs before the
	// claims waiting behind it may take another of the ClaimConcurrency
	// slots (default DefaultClaimSpillAfter).
	ClaimSpillAfter time.Duration
	// TracerProvider records the API's spans (the request, the claim);
	// default: none recorded, the trace context still passed on.
	TracerProvider trace.TracerProvider
	// ServeMetrics serves /metrics on the API's address (else it is
	// served elsewhere, see roles); MetricsToken, when set, is required
	// there as a bearer token.
	ServeMetrics bool
	MetricsToken string
}

// The defaults of Config; config.Defaults uses the same constants.
const (
	// DefaultMismatchStatus answers a key reused with another request:
	// 409 Conflict, as the request conflicts with the one the key was
	// first used for. 422, the IETF draft's answer, is a setting away.
	DefaultMismatchStatus = http.StatusConflict
	// DefaultDBTimeout bounds a request's work in the database: a
	// hundred times a healthy claim (milliseconds), and short enough that
	// a hung database gets a 503 with Retry-After before clients and load
	// balancers give up on a hang.
	DefaultDBTimeout = 2 * time.Second
	// DefaultClaimConcurrency is how many claim transactions run at once:
	// half the API's default pool (config.Defaults' APIPoolSize, 8), so
	// that reads find connections; claims arriving meanwhile share the
	// next transaction (group commit), so more at once would only add
	// serialization conflicts on one table.
	DefaultClaimConcurrency = 4
	// DefaultClaimSpillAfter: while claim transactions take less than
	// this, they run one at a time, and the claims that arrive meanwhile
	// wait for the next, larger group: on a database close to serve that
	// costs it fewer commits (BENCHMARKS.md: 30 ms gave 1.34x the
	// throughput of four slots at once, 10 ms 1.17x). A transaction that
	// takes longer (one stuck on a connection that hangs, or every one on
	// a database far away) opens the next slot, up to ClaimConcurrency.
	DefaultClaimSpillAfter = 30 * time.Millisecond
)

// API serves the HTTP contract.
type API struct {
	cfg         Config
	httpMetrics *httpMetrics
	tracer      trace.Tracer
	claims      *claimer
	keys        map[[32]byte]string
	metrics     *metrics
	openAPI     []byte
	draining    chan struct{}
	drain       sync.Once
	waiters     *waiters
	// failures logs requests that failed on the database or Kafka.
	failures *logging.Throttle
	// lastReplay is the stored answer replayed last, kept only when
	// faults are configured (mutateReplay).
	lastReplay struct {
		mu          sync.Mutex
		operationID string
		resp        *idemgate.Response
	}
}

// New returns the API, or an error when the registered modules' OpenAPI
// fragments cannot be merged into one document.
func New(cfg Config) (*API, error) {
	if cfg.Registry == nil || cfg.Store == nil || cfg.Emitter == nil {
		return nil, errors.New("command: a registry, a store and an emitter are required")
	}
	cfg.MismatchStatus = cmp.Or(cfg.MismatchStatus, DefaultMismatchStatus)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.DBTimeout <= 0 {
		cfg.DBTimeout = DefaultDBTimeout
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	if cfg.ClaimConcurrency <= 0 {
		cfg.ClaimConcurrency = DefaultClaimConcurrency
	}
	if cfg.ClaimSpillAfter <= 0 {
		cfg.ClaimSpillAfter = DefaultClaimSpillAfter
	}
	if cfg.Retention == nil {
		cfg.Retention = idemgate.Retention{}.For
	}
	doc, err := openAPIDocument(cfg.Registry)
	if err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, keys: cfg.APIKeys, metrics: newMetrics(cfg.Metrics), openAPI: doc,
		draining: make(chan struct{}), waiters: newWaiters(), failures: logging.NewThrottle(cfg.Logger, 10*time.Second)}
	a.claims = newClaimer(cfg.Store, cfg.ClaimConcurrency, cfg.ClaimSpillAfter, 64, cfg.DBTimeout, a.metrics.claimGroups)
	a.httpMetrics = newHTTPMetrics(cfg.Metrics)
	a.tracer = cfg.TracerProvider.Tracer(tracing.Name)
	return a, nil
}

// Handler returns the router: the built-in routes, then each registered
// operation's POST route and each module's reads.
func (a *API) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(otelhttp.NewMiddleware("idemgate", otelhttp.WithTracerProvider(a.cfg.TracerProvider),
		otelhttp.WithPropagators(tracing.Propagator()), otelhttp.WithMeterProvider(metricnoop.NewMeterProvider())))
	r.Use(a.accessLog)
	r.Use(middleware.Recoverer)
	r.Use(middleware.GetHead) // HEAD wherever GET is served
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeProblem(w, idemgate.NotFound("this resource")) })
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110 15.5.6: a 405 lists the methods the resource supports
		// (chi's own 405 does, a custom one has to).
		if allow := allowedMethods(r, req); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeProblem(w, NewProblem(http.StatusMethodNotAllowed, idemgate.ProblemMethodNotAllowed, "Method not allowed", req.Method+" is not allowed here"))
	})
	r.Get("/healthz", health.LiveHandler)
	r.Get("/readyz", health.ReadyHandler(a.cfg.Ready, a.cfg.DBTimeout))
	r.Get("/openapi.json", a.openapi)
	if a.cfg.ServeMetrics {
		r.Method(http.MethodGet, "/metrics", health.MetricsHandler(a.cfg.Metrics, a.cfg.MetricsToken))
	}
	// Under /v1 authentication comes first, so that an unknown /v1 path
	// tells an anonymous client nothing; routes registered elsewhere are
	// authenticated too.
	r.Route("/v1", func(v1 chi.Router) {
		v1.Use(a.authenticate)
		a.mount(v1, "/v1")
	})
	r.Group(func(g chi.Router) {
		g.Use(a.authenticate)
		a.mount(g, "")
	})
	return r
}

// mount adds the routes under prefix ("/v1"), or, with prefix "", the
// routes outside /v1.
func (a *API) mount(r chi.Router, prefix string) {
	under := func(path string) (string, bool) {
		if rest, ok := strings.CutPrefix(path, "/v1/"); ok {
			return "/" + rest, prefix != ""
		}
		return path, prefix == ""
	}
	if p, ok := under("/v1/operations/{operationID}"); ok {
		r.Get(p, a.getCommand)
	}
	if p, ok := under("/v1/idempotency-keys/{operation}/{key}"); ok {
		r.Get(p, a.getKey)
	}
	for _, op := range a.cfg.Registry.Operations() {
		if p, ok := under(op.Path); ok {
			r.Post(p, a.accept(op))
		}
	}
	for _, rd := range a.cfg.Registry.Reads() {
		if p, ok := under(rd.Path); ok {
			r.Get(p, a.read(rd))
		}
	}
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
		// HEAD is served wherever GET is (middleware.GetHead).
		if routes.Match(chi.NewRouteContext(), m, path) || m == http.MethodHead && routes.Match(chi.NewRouteContext(), http.MethodGet, path) {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}

type tenantKey struct{}

// authenticate maps the bearer API key to its tenant. It runs before the
// body is read: an unknown client is answered at once, and the
// connection closed rather than drained of a body it may trickle for
// ever. Two Authorization headers are refused, not resolved.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := health.BearerToken(r)
		if !ok {
			a.metrics.rejected.WithLabelValues("401").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="idemgate"`)
			rejectUnread(w, errUnauthorized())
			return
		}
		tenant, known := a.keys[sha256.Sum256([]byte(token))]
		if !known {
			a.metrics.rejected.WithLabelValues("401").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="idemgate", error="invalid_token"`)
			rejectUnread(w, errUnauthorized())
			return
		}
		infoOf(r.Context()).tenant = tenant
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, tenant)))
	})
}

// unreadGrace is how long the rest of a refused request's body may take
// to arrive once the answer is sent, before the connection is cut.
const unreadGrace = time.Second

// rejectUnread answers a request refused before its body was read and
// closes the connection: the server would otherwise read the rest of the
// body before answering, which a client trickling it can make last for
// ever. Even with "Connection: close", net/http reads up to 256 KB of an
// unread body after the answer, before it closes: the read deadline
// bounds that to unreadGrace (a client sending its body at once is done
// well within it, and its connection closes cleanly).
func rejectUnread(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Connection", "close")
	writeProblem(w, p)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(unreadGrace))
}

// Drain makes requests waiting for an outcome (Prefer: wait) answer their
// pending 202 now: the process is shutting down.
func (a *API) Drain() { a.drain.Do(func() { close(a.draining) }) }

// dbContext bounds a request's work in the database.
func (a *API) dbContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.cfg.DBTimeout)
}

func tenantOf(r *http.Request) string { return r.Context().Value(tenantKey{}).(string) }

// pathParams reads the route's {name} parameters.
func pathParams(r *http.Request, path string) map[string]string {
	names := idemgate.PathParams(path)
	if len(names) == 0 {
		return nil
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		out[n] = chi.URLParam(r, n)
	}
	return out
}
