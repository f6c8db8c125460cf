package projector

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/store"
)

// Relay publishes recorded responses as result events and marks them
// sent. It is at-least-once: a crash between the publish and the mark
// publishes the row again, with the same event id (the operation id) for
// consumers to deduplicate on.
type Relay struct {
	store    *store.Store
	producer *events.Producer
	topic    string
	batch    int
	interval time.Duration
	faults   *fault.Injector
	logger   *slog.Logger
}

// NewRelay returns a relay publishing to topic.
func NewRelay(st *store.Store, producer *events.Producer, topic string, batch int, interval time.Duration, faults *fault.Injector, logger *slog.Logger) *Relay {
	return &Relay{store: st, producer: producer, topic: topic, batch: batch, interval: interval, faults: faults, logger: logger}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		for {
			n, err := r.RelayOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.logger.Warn("relay", "err", err)
				}
				break
			}
			if n < r.batch {
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

// RelayOnce publishes up to one batch of unsent responses and returns how
// many it published.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	outs, err := r.store.UnsentOutcomes(ctx, r.batch)
	if err != nil || len(outs) == 0 {
		return 0, err
	}
	recs := make([]*kgo.Record, 0, len(outs))
	ids := make([]string, 0, len(outs))
	for _, o := range outs {
		env, err := events.Completed(events.CommandCompleted{OperationID: o.OperationID, Tenant: o.Tenant,
			Operation: o.Operation, IdempotencyKey: o.IdempotencyKey}, o.Response, o.RecordedAt)
		if err != nil {
			return 0, err
		}
		recs = append(recs, env.Record(r.topic, events.IdentityKey(o.Tenant, o.Operation, o.IdempotencyKey)))
		ids = append(ids, o.OperationID)
	}
	if err := r.producer.EmitSync(ctx, recs...); err != nil {
		return 0, err
	}
	r.faults.Hit(fault.AfterRelayPublish)
	if err := r.store.MarkSent(ctx, ids); err != nil {
		return 0, err
	}
	return len(recs), nil
}
