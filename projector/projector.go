// Package projector applies command events exactly once in effect. For an
// operation applied in the database, ONE transaction records the event as
// processed (a redelivery finds it and does nothing), applies the effect,
// writes the outbox row with the response and completes the claim. The
// operations come from a registry: the projector knows none of them.
package projector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/tracing"
)

// Config configures a Projector.
type Config struct {
	Store    *store.Store
	Registry *idemgate.Registry
	// Name scopes the dedup records: projectors with different names each
	// apply every event once.
	Name string
	// Producer and DeadLetterTopic receive events that cannot be applied.
	Producer        *events.Producer
	DeadLetterTopic string
	// ResultsTopic, when set, receives the result event of each outcome
	// the projector records, through Producer, right after the commit
	// that recorded it; the projector then marks its outbox row sent. The
	// relay publishes what stays unsent past its grace. When empty, the
	// relay publishes every outcome.
	ResultsTopic string
	Faults       *fault.Injector
	Registerer   prometheus.Registerer
	Logger       *slog.Logger
	// CallBudget bounds an upstream call. Only observed failures spend
	// its failure budget: a call is given up once it has failed
	// CallBudget.Failures times (default 5) and for CallBudget.For
	// (default DefaultCallRetryFor) since its first failure; then its
	// command gets a stored 502 when every attempt failed in an observed
	// way, and is quarantined as outcome unknown otherwise. Attempts that
	// never recorded an outcome (their process died) spend
	// CallBudget.MaxUnfinished (default DefaultMaxUnfinished) when they
	// come in a row: the command is then quarantined.
	CallBudget store.CallBudget
	// CallBackoff is the wait before the second attempt at a call; it
	// doubles up to MaxCallBackoff (defaults DefaultCallBackoff and
	// DefaultMaxCallBackoff).
	CallBackoff, MaxCallBackoff time.Duration
	// TracerProvider records the apply and upstream-call spans, children
	// of the span that sent each record; default: none recorded.
	TracerProvider trace.TracerProvider
}

// attemptTimeout bounds one attempt at the database (a transaction), so
// that a hung database can hold neither a partition nor a rebalance for
// long: it is well below the consumer group's rebalance timeout.
const attemptTimeout = 10 * time.Second

// maxGroup bounds the commands of one group transaction (grouper): one
// consumer batch (consumer.DefaultBatchSize). At saturation it kept the
// completions as prompt as without grouping (202 -> COMPLETED p99 1.02x),
// where 1,000 delayed them (1.70x), for as much CPU saved (BENCHMARKS.md).
const maxGroup = 200

// attemptContext is the context of one attempt: shutdown and revocation
// (the end of ctx) do not cut it short, its own bound does.
func attemptContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// Projector routes command events to the applier of their operation.
type Projector struct {
	cfg     Config
	tracer  trace.Tracer
	latency prometheus.Histogram
	applied *prometheus.CounterVec
	dead    prometheus.Counter
	unknown *prometheus.CounterVec
	waiting *prometheus.GaugeVec
	results *results // nil without a ResultsTopic
	group   *grouper // the shared transactions of in-database operations
	// isolation lets a call run alone in the process (see isolatedIf).
	isolation sync.RWMutex
}

// New returns a projector.
func New(cfg Config) (*Projector, error) {
	if cfg.Store == nil || cfg.Registry == nil || cfg.Name == "" {
		return nil, errors.New("projector: a store, a registry and a name are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	cfg.CallBudget.Failures = cmp.Or(cfg.CallBudget.Failures, DefaultCallFailures)
	cfg.CallBudget.For = cmp.Or(cfg.CallBudget.For, DefaultCallRetryFor)
	cfg.CallBudget.MaxUnfinished = cmp.Or(cfg.CallBudget.MaxUnfinished, DefaultMaxUnfinished)
	if cfg.CallBackoff <= 0 {
		cfg.CallBackoff = DefaultCallBackoff
	}
	if cfg.MaxCallBackoff <= 0 {
		cfg.MaxCallBackoff = DefaultMaxCallBackoff
	}
	p := &Projector{
		cfg: cfg,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "idemgate_completion_latency_seconds",
			Help:    "Time from a command's claim to its recorded outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_commands_completed_total", Help: "Commands whose outcome the projector recorded, by status.",
		}, []string{"operation", "status"}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idemgate_commands_deadlettered_total", Help: "Events sent to the dead-letter topic.",
		}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_commands_quarantined_total",
			Help: "Commands whose upstream call was quarantined as outcome unknown (nothing stored; redrive resolves them).",
		}, []string{"operation"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "idemgate_upstream_waiting_commands", Help: "Commands whose upstream call (or its retry) is under way in this process.",
		}, []string{"operation"}),
	}
	p.tracer = cfg.TracerProvider.Tracer(tracing.Name)
	p.results = newResults(cfg, p.tracer)
	p.group = newGrouper(p, maxGroup)
	if cfg.Registerer != nil {
		cs := []prometheus.Collector{p.latency, p.applied, p.dead, p.unknown, p.waiting}
		if p.results != nil {
			cs = append(cs, p.results.published)
		}
		for _, c := range cs {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("projector: %w", err)
			}
		}
	}
	return p, nil
}

// IsPermanent reports whether a Handle error will recur on every retry:
// an undecodable event, an applier's permanent error, or an SQL error of
// the data itself. Lost connections, timeouts and serialization failures
// are transient: the work is retried, never recorded as failed.
func IsPermanent(err error) bool {
	return errors.Is(err, idemgate.ErrPermanent) || !sqldb.IsTransient(err)
}

// Handle applies one record. It returns nil once the event's effect and
// outcome are committed (or were already), and an error otherwise (see
// IsPermanent). When ctx ends (revocation, shutdown) the attempt in hand
// completes, but no new one starts.
func (p *Projector) Handle(ctx context.Context, rec *kgo.Record) error {
	cmd, err := decode(rec)
	if err != nil {
		return err
	}
	op, ok := p.cfg.Registry.Operation(cmd.Operation)
	if !ok {
		return fmt.Errorf("%w: no operation %q is registered", idemgate.ErrPermanent, cmd.Operation)
	}
	ctx, span := p.startApply(ctx, rec, cmd)
	defer span.End()
	if op.Call != nil {
		return p.call(ctx, rec, cmd, op)
	}
	// In a group with the other partitions' stretches: a single record
	// is what most fetches bring a partition at a moderate rate.
	return p.group.apply(ctx, []idemgate.Command{cmd}, within(ctx))
}

func (p *Projector) observe(cmd idemgate.Command, resp idemgate.Response) {
	p.latency.Observe(time.Since(cmd.AcceptedAt).Seconds())
	p.applied.WithLabelValues(cmd.Operation, fmt.Sprint(resp.Status)).Inc()
}

func decode(rec *kgo.Record) (idemgate.Command, error) {
	env, err := events.Decode(rec)
	if err != nil {
		return idemgate.Command{}, fmt.Errorf("%w: %w", idemgate.ErrPermanent, err)
	}
	cmd, err := events.DecodeCommand(env)
	if err != nil {
		return idemgate.Command{}, fmt.Errorf("%w: %w", idemgate.ErrPermanent, err)
	}
	return cmd, nil
}

// startApply starts the span of a command's application, a child of the
// span that sent the record (the tracing hook's receive span when there
// is one, else the record's traceparent).
func (p *Projector) startApply(ctx context.Context, rec *kgo.Record, cmd idemgate.Command) (context.Context, trace.Span) {
	parent := tracing.FromTraceParent(ctx, cmd.TraceParent)
	if rec.Context != nil {
		if sc := trace.SpanContextFromContext(rec.Context); sc.IsValid() {
			parent = trace.ContextWithSpanContext(ctx, sc)
		}
	}
	return p.tracer.Start(parent, "idemgate.apply "+cmd.Operation, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("idemgate.operation", cmd.Operation), attribute.String("idemgate.operation_id", cmd.OperationID),
			attribute.String("messaging.system", "kafka"), attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", rec.Topic)))
}
