// Package emit carries accepted commands to Kafka: the Emitter sends each
// command's event as it is claimed, without making its request wait, and
// the Sweeper sends again those Kafka never acknowledged, once their
// lease has passed.
package emit

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/logging"
	"github.com/idemgate/idemgate/store"
)

// Emitter publishes accepted commands to the commands topic. It never
// makes a request wait on Kafka: records are pipelined, and the commands
// whose event was acknowledged are recorded as published in batches. A
// command whose record failed is not, and the sweeper emits it again
// after its lease.
type Emitter struct {
	producer *events.Producer
	topic    string
	store    *store.Store
	logger   *slog.Logger
	acked    chan string
	faults   *fault.Injector
	log      *logging.Throttle
	// ctx outlives requests: a record must not be cancelled because the
	// request that emitted it has been answered.
	ctx context.Context
}

// ackBacklog bounds the acknowledgements waiting to be recorded (about
// 1 MB). Beyond it an acknowledgement is dropped: its command stays
// pending and the sweeper emits it again after its lease, which is safe
// but costs a second event; at 4,096 a burst of 10,000 commands at 6,000/s
// dropped a tenth of them.
const ackBacklog = 1 << 16

// New returns an emitter; call Run to record acknowledgements.
func New(ctx context.Context, producer *events.Producer, topic string, st *store.Store, faults *fault.Injector, logger *slog.Logger) *Emitter {
	return &Emitter{producer: producer, topic: topic, store: st, faults: faults, logger: logger, acked: make(chan string, ackBacklog), ctx: ctx,
		log: logging.NewThrottle(logger, 30*time.Second)}
}

// Emit sends the command event. It returns at once. ctx carries the
// trace the record joins (the request's); its end does not cancel the
// record: once claimed, a command must reach Kafka whether or not its
// request is still there.
func (e *Emitter) Emit(ctx context.Context, cmd idemgate.Command) {
	env, err := events.CommandAccepted(cmd)
	if err != nil {
		e.logger.Error("encode command event", "operation_id", cmd.OperationID, "err", err)
		return
	}
	rec := env.Record(e.topic, events.IdentityKey(cmd.Tenant, cmd.Operation, cmd.IdempotencyKey))
	rec.Context = context.WithoutCancel(ctx)
	e.producer.Emit(e.ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			e.log.Warn("command event not acknowledged; the sweeper will re-emit it", "operation_id", cmd.OperationID, "err", err)
			return
		}
		e.faults.Hit(fault.AfterKafkaAck)
		select {
		case e.acked <- cmd.OperationID:
		default:
			// Backlogged: the claim stays accepted and the sweeper re-emits
			// it; the projector deduplicates.
		}
	})
}

// drainBudget bounds how long Run keeps recording acknowledgements once
// its context has ended: a process shutting down must exit within its
// grace period even when the database does not answer. What is left
// unrecorded stays accepted, and a sweeper emits it again after its lease
// (a second event, which the projector deduplicates).
const drainBudget = 5 * time.Second

// Run records acknowledged commands as published, in batches, until ctx
// ends; then it records the acknowledgements already received before it
// returns (the caller flushes the producer first). Once ctx has ended,
// every mark, the one in flight included, gets drainBudget at most.
func (e *Emitter) Run(ctx context.Context) error {
	// work bounds the marks: it ends drainBudget after ctx. A mark in
	// flight when the process stops, on a connection hung half-open say,
	// would otherwise hold the shutdown until the pool's own transaction
	// bound (30 s), past the grace a process manager gives (a fresh-clone
	// CI run's TestDatabaseHalfOpen: serve still stopping 20 s after
	// SIGTERM, its emitter waiting on a mark begun during the fault).
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(drainBudget, stopWork) })()
	batch := make([]string, 0, 1024)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := e.store.MarkPublished(work, batch); err != nil {
			e.log.Warn("record published commands; the sweeper will re-emit them", "n", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	// take adds whatever else is waiting, up to a batch.
	take := func() {
		for len(batch) < cap(batch) {
			select {
			case id := <-e.acked:
				batch = append(batch, id)
			default:
				return
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			for {
				take()
				if len(batch) == 0 {
					return nil
				}
				if work.Err() != nil {
					e.logger.Warn("stopping: acknowledged commands left unrecorded; a sweeper will re-emit them",
						"n", len(batch)+len(e.acked), "budget", drainBudget)
					return nil
				}
				flush()
			}
		case id := <-e.acked:
			batch = append(batch, id)
			take()
			flush()
		}
	}
}
