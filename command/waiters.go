package command

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"

	"github.com/idemgate/idemgate/internal/tick"
)

// waiters are the requests waiting for an outcome (Prefer: wait), by
// operation id. They are woken by push, not by polling the database each:
// serve follows the results topic (FollowResults) while anyone waits, and,
// for outcomes that topic does not bring (no relay running, Kafka down,
// an outcome published before the follower caught up), one query a
// second checks every waiting operation at once (WatchWaiters).
type waiters struct {
	mu sync.Mutex
	by map[string]map[chan struct{}]bool
	// first is signalled when a waiter arrives while there was none, so
	// that FollowResults starts following again.
	first chan struct{}
	// following is true while FollowResults reads the results topic.
	following atomic.Bool
}

func newWaiters() *waiters {
	return &waiters{by: map[string]map[chan struct{}]bool{}, first: make(chan struct{}, 1)}
}

// add registers a waiter for operationID; call remove when done.
func (w *waiters) add(operationID string) (wake chan struct{}, remove func()) {
	wake = make(chan struct{}, 1)
	w.mu.Lock()
	if len(w.by) == 0 {
		select {
		case w.first <- struct{}{}:
		default:
		}
	}
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

// empty reports whether nobody waits.
func (w *waiters) empty() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.by) == 0
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

// followIdle is how long FollowResults keeps following the results topic
// after the last waiter left: a burst of waits pays for one client start.
// A variable for the tests.
var followIdle = 30 * time.Second

// FollowResults wakes waiters as the results topic announces outcomes,
// until ctx ends. It follows the topic only while someone waits (and
// followIdle after): with nobody waiting, reading and decoding every
// outcome of the deployment is work for nothing. Each time, it reads
// every partition from the end, in no consumer group: each serve process
// sees every outcome. An outcome published between a waiter's arrival and
// the follower's first fetch is not seen here; the waiter's own read of
// the database after it registered, or WatchWaiters within a second,
// answers it.
func (a *API) FollowResults(ctx context.Context, opts []kgo.Opt, topic string) error {
	for {
		if a.waiters.empty() {
			select {
			case <-ctx.Done():
				return nil
			case <-a.waiters.first:
			}
		}
		if err := a.followResults(ctx, opts, topic); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// followResults follows the results topic from its end until nobody has
// waited for followIdle, or ctx ends.
func (a *API) followResults(ctx context.Context, opts []kgo.Opt, topic string) error {
	client, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		return err
	}
	defer client.Close()
	a.waiters.following.Store(true)
	defer a.waiters.following.Store(false)
	lastWaiter := time.Now()
	for {
		if !a.waiters.empty() {
			lastWaiter = time.Now()
		} else if time.Since(lastWaiter) > followIdle {
			return nil
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := client.PollFetches(pctx)
		cancel()
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
