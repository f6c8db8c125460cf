package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/roles"
	"github.com/idemgate/idemgate/testenv"
)

// TestTraceAcrossRoles follows one command through serve, project and
// relay, run as separate roles (on the real broker under make test), all
// recording into one in-memory exporter: the client's traceparent starts
// the trace, and every span of the command joins it in the right place.
//
//	POST /v1/orders (server)            <- the client's span
//	├── idemgate.claim
//	└── <commands> publish (kotel)
//	    └── <commands> receive (kotel)
//	        └── idemgate.apply orders.create
//	            ├── idemgate.upstream.call orders.create -> the upstream sees this trace
//	            └── idemgate.result.publish orders.create (after the commit)
//	                └── <results> publish (kotel)
func TestTraceAcrossRoles(t *testing.T) {
	u := startUpstream(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := startTracedRoles(t, tp, "IDEMGATE_ROUTES", u.routesFile(t))

	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	nonce := testenv.Random(6)
	req, _ := http.NewRequest("POST", s.base+"/v1/orders", strings.NewReader(orderBody("ok", nonce)))
	req.Header.Set("Authorization", "Bearer key-a")
	req.Header.Set("Idempotency-Key", "traced-1")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustEqual(t, "status", resp.StatusCode, 202)
	if tr := resp.Header.Get("Traceresponse"); !strings.Contains(tr, clientTrace) {
		t.Fatalf("traceresponse %q does not name the client's trace", tr)
	}
	s.outcomeOf("key-a", resp.Header.Get("Location"))

	// A span is exported when it ends, and a parent may end after its
	// child (the projector's publish span outlives the produce it wraps), so
	// wait for every span the checks below name.
	want := []string{"POST /v1/orders", "idemgate.claim", "commands publish", "commands receive",
		"idemgate.apply orders.create", "idemgate.upstream.call orders.create",
		"idemgate.result.publish orders.create", "results publish"}
	byName := map[string]tracetest.SpanStub{}
	// Not Eventually: after 30 s the checks below say which span is
	// missing, or which parent is wrong, better than a timeout would.
	_ = testenv.Poll(t.Context(), 30*time.Second, func() error {
		for _, sp := range exp.GetSpans() {
			if sp.SpanContext.TraceID().String() == clientTrace {
				byName[spanKind(sp.Name, s.topics.Commands, s.topics.Results)] = sp
			}
		}
		missing := slices.IndexFunc(want, func(n string) bool { _, ok := byName[n]; return !ok })
		return testenv.Check(missing < 0, "span %q not exported yet", want[max(missing, 0)])
	})
	parentOf := func(child, parent string) {
		t.Helper()
		c, ok1 := byName[child]
		p, ok2 := byName[parent]
		if !ok1 || !ok2 {
			t.Fatalf("spans of the trace: %v; want %q under %q", names(byName), child, parent)
		}
		if c.Parent.SpanID() != p.SpanContext.SpanID() {
			t.Fatalf("%q's parent is %s, want %q (%s)", child, c.Parent.SpanID(), parent, p.SpanContext.SpanID())
		}
	}
	server := byName["POST /v1/orders"]
	if server.Parent.SpanID().String() != "00f067aa0ba902b7" || server.SpanKind != trace.SpanKindServer {
		t.Fatalf("server span %+v is not the client's child", server.Parent)
	}
	parentOf("idemgate.claim", "POST /v1/orders")
	parentOf("commands publish", "POST /v1/orders")
	parentOf("commands receive", "commands publish")
	parentOf("idemgate.apply orders.create", "commands receive")
	parentOf("idemgate.upstream.call orders.create", "idemgate.apply orders.create")
	parentOf("idemgate.result.publish orders.create", "idemgate.apply orders.create")
	parentOf("results publish", "idemgate.result.publish orders.create")

	// The upstream was called within the trace, as a child of the call span.
	u.mu.Lock()
	tp0 := u.traceparents[nonce]
	u.mu.Unlock()
	call := byName["idemgate.upstream.call orders.create"]
	if want := "00-" + clientTrace + "-" + call.SpanContext.SpanID().String() + "-01"; tp0 != want {
		t.Fatalf("the upstream got traceparent %q, want %q", tp0, want)
	}
}

// spanKind names a span by its role: the test's topic prefix is dropped.
func spanKind(name, commands, results string) string {
	name = strings.Replace(name, commands, "commands", 1)
	return strings.Replace(name, results, "results", 1)
}

func names(m map[string]tracetest.SpanStub) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	return out
}

// startTracedRoles starts serve, project and relay as separate roles on a
// fresh database and fresh topics, recording their spans with tp.
func startTracedRoles(t *testing.T, tp trace.TracerProvider, extra ...string) *stack {
	s := startRoles(t, nil, extra...) // the database, the topics and the settings; no role yet
	cfg, err := config.FromEnv(func(k string) string { return s.vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	for i, run := range []func(context.Context, roles.Options) error{roles.Serve, roles.Project, roles.Relay} {
		o := roles.Options{Config: cfg, TracerProvider: tp, Logger: quietLogger(), Metrics: prometheus.NewRegistry()}
		if i == 0 {
			o.Config.Addr = s.apiAddr()
		}
		if o.Registry, err = registry(o); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, o) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("role: %v", err)
			}
		})
	}
	s.waitHealthy()
	return s
}
