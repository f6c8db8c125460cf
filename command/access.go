package command

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// requestInfo is what the handlers learn about a request for its access
// log line: its tenant and, for a command, its operation id.
type requestInfo struct {
	tenant      string
	operationID string
}

type requestInfoKey struct{}

func infoOf(ctx context.Context) *requestInfo {
	if i, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{} // outside the access log's middleware: written to and dropped
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// httpMetrics count the API's answers by route pattern (not by path:
// ids would make the series unbounded).
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_http_requests_total", Help: "HTTP requests answered, by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idemgate_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// accessLog gives every request an id (the client's X-Request-Id when it
// is a plain token, else a new one) echoed in the response, and writes
// one log line per request: method, route pattern, status, duration,
// tenant, operation id, request id and trace id.
func (a *API) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !requestIDPattern.MatchString(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
			// W3C Trace Context level 2: the trace this request joined.
			w.Header().Set("Traceresponse", "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-"+sc.TraceFlags().String())
		}
		info := &requestInfo{}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status, took := ww.Status(), time.Since(start)
		if status == 0 {
			status = http.StatusOK
		}
		a.httpMetrics.requests.WithLabelValues(r.Method, route, strconv.Itoa(status)).Inc()
		a.httpMetrics.duration.WithLabelValues(r.Method, route).Observe(took.Seconds())
		if !a.cfg.Logger.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		// Typed attributes in a fixed array: no boxing, no growth.
		var buf [10]slog.Attr
		attrs := append(buf[:0], slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
			slog.Float64("duration_ms", float64(took.Microseconds())/1000), slog.Int("bytes", ww.BytesWritten()), slog.String("request_id", id))
		if info.tenant != "" {
			attrs = append(attrs, slog.String("tenant", info.tenant))
		}
		if info.operationID != "" {
			attrs = append(attrs, slog.String("operation_id", info.operationID))
		}
		if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
			trace.SpanFromContext(r.Context()).SetName(r.Method + " " + route)
		}
		a.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
