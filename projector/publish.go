package projector

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/logging"
	"github.com/idemgate/idemgate/store"
)

// results publishes the outcomes the projector recorded as result events,
// right after the commit that recorded them, without waiting: the
// producer acknowledges them in the background, and the acknowledged rows
// are marked sent, as many as have come in by then in one statement. The
// relay publishes whatever stays unsent past its grace (a projector that
// died before its publish or its mark, a produce that failed): the same
// envelope and event id, so a result published twice is one event to a
// consumer that deduplicates.
type results struct {
	producer  *events.Producer
	topic     string
	store     *store.Store
	tracer    trace.Tracer
	log       *logging.Throttle
	published prometheus.Counter

	mu      sync.Mutex
	acked   []store.Recorded
	marking bool
}

func newResults(cfg Config, tracer trace.Tracer) *results {
	if cfg.ResultsTopic == "" || cfg.Producer == nil {
		return nil
	}
	return &results{producer: cfg.Producer, topic: cfg.ResultsTopic, store: cfg.Store, tracer: tracer,
		log: logging.NewThrottle(cfg.Logger, 30*time.Second),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idemgate_projector_results_published_total",
			Help: "Result events the projector published right after recording their outcomes (the relay publishes the others).",
		})}
}

// publish hands the result events of what a committed transaction
// recorded to the producer; each one's span is a child of the span in
// parent(its operation id): its command's apply span. A nil *results
// publishes nothing (the relay does, after its grace).
func (r *results) publish(parent func(operationID string) context.Context, applied ...store.Applied) {
	if r == nil {
		return
	}
	for _, a := range applied {
		if a.RecordedAt.IsZero() {
			continue // not written by this transaction: its writer publishes it
		}
		cmd := a.Command
		env, err := events.CommandCompleted(cmd, a.Response, a.RecordedAt)
		if err != nil {
			r.log.Warn("projector: encoding a result event failed; the relay publishes it after its grace", "err", err)
			continue
		}
		rec := env.Record(r.topic, events.IdentityKey(cmd.Tenant, cmd.Operation, cmd.IdempotencyKey))
		// A revocation does not take back what was committed.
		ctx := context.WithoutCancel(parent(cmd.OperationID))
		sctx, span := r.tracer.Start(ctx, "idemgate.result.publish "+cmd.Operation,
			trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attribute.String("idemgate.operation_id", cmd.OperationID),
				attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", r.topic)))
		rec.Context = sctx // the tracing hook parents its send span on it
		sent := store.Recorded{OperationID: cmd.OperationID, At: a.RecordedAt}
		r.producer.Emit(sctx, rec, func(_ *kgo.Record, err error) {
			defer span.End()
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
				r.log.Warn("projector: publishing a result event failed; the relay publishes it after its grace", "err", err)
				return
			}
			r.published.Inc()
			sent.SentAt = time.Now()
			r.sent(sent)
		})
	}
}

// sent queues an acknowledged row for its mark, and starts the marking
// when none is under way.
func (r *results) sent(rec store.Recorded) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acked = append(r.acked, rec)
	if !r.marking {
		r.marking = true
		go r.mark()
	}
}

// markPause is the least time between two marks: the rows acknowledged
// meanwhile are marked together, in one statement (each with the time it
// was acknowledged). Under load a mark every 50 ms costs what the relay's
// did; a row waits that much longer in the relay's view, far within its
// grace.
const markPause = 50 * time.Millisecond

// mark marks the acknowledged rows sent, all those acknowledged so far
// in one statement, until none is left. A mark that fails is not
// retried: the relay publishes those rows again after its grace, under
// the same event ids.
func (r *results) mark() {
	for {
		r.mu.Lock()
		rows := r.acked
		r.acked = nil
		if len(rows) == 0 {
			r.marking = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		if err := r.store.MarkSent(ctx, rows); err != nil {
			r.log.Warn("projector: marking published results sent failed; the relay publishes them again after its grace", "err", err)
		}
		cancel()
		time.Sleep(markPause)
	}
}

// within is the parent of publish whose commands all have ctx's span.
func within(ctx context.Context) func(string) context.Context {
	return func(string) context.Context { return ctx }
}
