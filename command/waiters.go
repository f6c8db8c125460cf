package command

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"

	"github.com/idemgate/idemgate/internal/tick"
)

// waiters are the requests waiting for an outcome (Prefer: wait), by
// operation id. They are woken by push, not by polling the database each:
// serve follows the results topic (FollowResults), and, for outcomes that
// topic does not bring (no relay running, Kafka down), one query a second
// checks every waiting operation at once (WatchWaiters).
type waiters struct {
	mu sync.Mutex
	by map[string]map[chan struct{}]bool
}

func newWaiters() *waiters { return &waiters{by: map[string]map[chan struct{}]bool{}} }

// add registers a waiter for operationID; call remove when done.
func (w *waiters) add(operationID string) (wake chan struct{}, remove func()) {
	wake = make(chan struct{}, 1)
	w.mu.Lock()
	if w.by[operationID] == nil {
		w.by[operationID] = map[chan struct{}]bool{}
	}
	w.by[operationID][wake] = true
	w.mu.Unlock()
	return wake, func() {
		w.mu.Lock()
		delete(w.by[operationID], wake)
		if len(w.by[operationID]) == 0 {
			delete(w.by, operationID)
		}
		w.mu.Unlock()
	}
}

// notify wakes the waiters of operationID, if any.
func (w *waiters) notify(operationID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wake := range w.by[operationID] {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

func (w *waiters) ids() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.by))
	for id := range w.by {
		out = append(out, id)
	}
	return out
}

// FollowResults wakes waiters as the results topic announces outcomes,
// until ctx ends. It reads every partition from the end, in no consumer
// group: each serve process sees every outcome.
func (a *API) FollowResults(ctx context.Context, opts []kgo.Opt, topic string) error {
	client, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		return err
	}
	defer client.Close()
	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			env, err := events.Decode(rec)
			if err != nil || env.Type != events.TypeCommandCompleted {
				return
			}
			var c struct {
				OperationID string `json:"operation_id"`
			}
			if json.Unmarshal(env.Data, &c) == nil && c.OperationID != "" {
				a.waiters.notify(c.OperationID)
			}
		})
	}
}

// WatchWaiters checks, every interval, whether any waited-for operation
// completed, with one query for all of them, until ctx ends.
func (a *API) WatchWaiters(ctx context.Context, interval time.Duration) error {
	tick.Every(ctx, interval, func(ctx context.Context) {
		ids := a.waiters.ids()
		if len(ids) == 0 {
			return
		}
		qctx, cancel := context.WithTimeout(ctx, a.cfg.DBTimeout)
		done, err := a.cfg.Store.Completed(qctx, ids)
		cancel()
		if err != nil {
			return
		}
		for _, id := range done {
			a.waiters.notify(id)
		}
	})
	return nil
}
