package projector

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/logging"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/tracing"
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	Store    *store.Store
	Producer *events.Producer
	// Topic receives the result events.
	Topic string
	// Batch is the most rows published at once (default 500); Interval
	// is how often the outbox is read when it was found empty (default 50 ms;
	// Prefer: wait answers as soon as the result event is out).
	Batch    int
	Interval time.Duration
	// Grace is how old an unsent outcome must be (since it was recorded)
	// before the relay publishes it: a projector with a ResultsTopic
	// publishes its outcomes itself, right after its commit, and marks
	// them sent, so the relay only publishes those it did not (it died
	// between its commit and its publish or its mark, or its produce
	// failed). Zero publishes every unsent outcome at once, for
	// projectors that do not publish (roles.Relay's default is
	// DefaultRelayGrace).
	Grace  time.Duration
	Faults *fault.Injector
	Logger *slog.Logger
	// Registerer receives the relay's metrics; may be nil.
	Registerer prometheus.Registerer
	// TracerProvider records a publish span per outcome, in the trace of
	// the request that claimed its command; default: none recorded.
	TracerProvider trace.TracerProvider
}

// DefaultRelayGrace is the relay's grace in the deployed roles: far above
// the time a projector takes from its commit to its mark (a produce with
// acks=all and one UPDATE: milliseconds, a few hundred at the p99 of a
// loaded 2-core box), so that the normal path publishes once and the
// relay's poll finds nothing; yet short next to what a projector's death
// costs anyway (its partitions wait for the consumer group to move them,
// at least the session timeout). It bounds how late the result event of
// a command comes when its projector dies after the commit.
const DefaultRelayGrace = 5 * time.Second

// Relay publishes recorded responses as result events and marks them
// sent. It is at-least-once: a crash between the publish and the mark
// publishes the row again, with the same event id for consumers to
// deduplicate on.
type Relay struct {
	cfg       RelayConfig
	tracer    trace.Tracer
	log       *logging.Throttle
	backlog   prometheus.Gauge
	oldest    prometheus.Gauge
	published prometheus.Counter
}

// NewRelay returns a relay.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Store == nil || cfg.Producer == nil || cfg.Topic == "" {
		return nil, errors.New("relay: a store, a producer and a topic are required")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 50 * time.Millisecond
	}
	cfg.Grace = max(cfg.Grace, 0)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	r := &Relay{cfg: cfg, tracer: cfg.TracerProvider.Tracer(tracing.Name), log: logging.NewThrottle(cfg.Logger, 30*time.Second),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idemgate_relay_backlog", Help: "Recorded outcomes not yet published to the results topic.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idemgate_relay_oldest_unsent_age_seconds", Help: "Age of the oldest recorded outcome not yet published (0 when none).",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idemgate_relay_published_total", Help: "Result events the relay published (a republished row counts again).",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.backlog, r.oldest, r.published} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// Run relays until ctx ends. During an outage of the database or Kafka
// it logs a few lines a minute, and goes on once the outage is over.
func (r *Relay) Run(ctx context.Context) error {
	// The backlog is measured on its own beat: a publish waits up to the
	// delivery timeout for an absent broker, and the gauges must show the
	// backlog growing meanwhile.
	measured := make(chan struct{})
	go func() { defer close(measured); r.measureEvery(ctx) }()
	defer func() { <-measured }()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		for {
			n, err := r.RelayOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("relay: publishing outcomes failed; retrying", "err", err)
				}
				break
			}
			if n < r.cfg.Batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// measureEvery sets the backlog gauges every second until ctx ends.
func (r *Relay) measureEvery(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		r.measure(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Relay) measure(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	n, oldest, err := r.cfg.Store.OutboxBacklog(ctx)
	if err != nil {
		return
	}
	r.backlog.Set(float64(n))
	if n == 0 {
		r.oldest.Set(0)
	} else {
		r.oldest.Set(max(0, time.Since(oldest).Seconds()))
	}
}

// RelayOnce publishes up to one batch of unsent responses and returns how
// many it published.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	unsent, err := r.cfg.Store.UnsentResponses(ctx, r.cfg.Batch, r.cfg.Grace)
	if err != nil || len(unsent) == 0 {
		return 0, err
	}
	recs := make([]*kgo.Record, 0, len(unsent))
	sent := make([]store.Recorded, 0, len(unsent))
	spans := make([]trace.Span, 0, len(unsent))
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	for _, u := range unsent {
		cmd := u.Command
		env, err := events.CommandCompleted(cmd, u.Response, u.RecordedAt)
		if err != nil {
			return 0, err
		}
		rec := env.Record(r.cfg.Topic, events.IdentityKey(cmd.Tenant, cmd.Operation, cmd.IdempotencyKey))
		sctx, span := r.tracer.Start(tracing.FromTraceParent(ctx, cmd.TraceParent), "idemgate.relay.publish "+cmd.Operation,
			trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attribute.String("idemgate.operation_id", cmd.OperationID),
				attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", r.cfg.Topic)))
		rec.Context = sctx // the tracing hook parents its send span on it
		spans = append(spans, span)
		recs = append(recs, rec)
		sent = append(sent, store.Recorded{OperationID: cmd.OperationID, At: u.RecordedAt})
	}
	if err := r.cfg.Producer.EmitSync(ctx, recs...); err != nil {
		return 0, err
	}
	acked := time.Now()
	for i := range sent {
		sent[i].SentAt = acked
	}
	r.published.Add(float64(len(recs)))
	r.cfg.Faults.Hit(fault.AfterRelayPublish)
	if err := r.cfg.Store.MarkSent(ctx, sent); err != nil {
		return 0, err
	}
	return len(recs), nil
}
