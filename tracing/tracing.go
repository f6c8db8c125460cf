// Package tracing sets up OpenTelemetry for idemgate's processes: the
// tracer provider, configured by the standard OTEL_* variables and off by
// default, and the W3C trace-context propagator that carries a trace from
// an HTTP request into Kafka record headers and on to an upstream call.
package tracing

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Name is the instrumentation scope of idemgate's own spans.
const Name = "github.com/idemgate/idemgate"

// Propagator carries the trace context: W3C traceparent/tracestate and
// baggage, in HTTP headers and in Kafka record headers alike.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Setup returns the process's tracer provider and its shutdown (which
// flushes the spans still buffered). Traces are exported when
// OTEL_TRACES_EXPORTER says so: "otlp" (OTLP over HTTP, configured by
// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, ...) or
// "console" (stdout, for a look); unset or "none", nothing is recorded,
// though trace context still passes through. OTEL_SDK_DISABLED=true turns
// it off too. service is the default service.name (OTEL_SERVICE_NAME
// overrides it).
func Setup(ctx context.Context, getenv func(string) string, service string) (trace.TracerProvider, func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return noop.NewTracerProvider(), off, nil
	}
	var exp sdktrace.SpanExporter
	var err error
	switch kind := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); kind {
	case "", "none":
		return noop.NewTracerProvider(), off, nil
	case "otlp":
		if p := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") + getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && !strings.HasPrefix(p, "http/protobuf") {
			return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: idemgate exports OTLP over HTTP (http/protobuf) only", p)
		}
		exp, err = otlptracehttp.New(ctx)
	case "console":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	default:
		return nil, nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q is not otlp, console or none", kind)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, nil, err
	}
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// TraceParent is the W3C traceparent of ctx's span ("" when there is
// none): what a claim keeps, so that a command re-emitted later, its
// result and its upstream call join the request's trace.
func TraceParent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// FromTraceParent returns ctx carrying the remote span of a traceparent.
func FromTraceParent(ctx context.Context, traceParent string) context.Context {
	if traceParent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceParent})
}
