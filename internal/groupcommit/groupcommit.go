// Package groupcommit gives concurrent callers' work shared transactions
// (group commit): the API's claims (command/claimer.go) and the
// projector's partitions' runs (projector/group.go). While every slot is
// busy, the items that arrive queue up, and the next free slot takes them
// together. While a slot is free, an item goes at once, alone if need be,
// unless the queue gathers (Gather): then the free slot waits a moment
// for the items that arrive with it. A queue that spills (Spill) opens a
// second slot only when the group running is slow.
package groupcommit

import (
	"slices"
	"sync"
	"time"
)

// Queue holds the items waiting for a slot.
type Queue[T comparable] struct {
	slots int
	take  func(queue []T) (group, rest []T)
	run   func(group []T)

	// gather, spill: see Gather and Spill. full says the waiting items
	// make a whole group (nil: never); both end their wait on it.
	gather time.Duration
	spill  time.Duration
	full   func(queue []T) bool

	mu    sync.Mutex
	queue []T
	// started holds when each slot in use was taken, in that order.
	started []time.Time
	// wakers are the gathering slots' signals: closed when the queue is
	// full.
	wakers []chan struct{}
	// spillTimer, while set, looks at the queue again when the youngest
	// group has run for spill.
	spillTimer *time.Timer
}

// New returns a queue that runs at most slots groups at once. take splits
// the waiting items, in their order, into the next group and the rest; it
// must return a group of its own (not a part of queue), at least one item
// when queue has one, and may reorder nothing. run applies a group and
// answers each of its callers; it runs on a goroutine of its own, in a
// slot.
func New[T comparable](slots int, take func(queue []T) (group, rest []T), run func(group []T)) *Queue[T] {
	return &Queue[T]{slots: max(1, slots), take: take, run: run}
}

// Gather makes each slot, once free, wait up to wait before it takes its
// group, so that items arriving together share it (the runs one fetch
// brings to the projector's partitions arrive within microseconds of each
// other, one slot apiece without it). The wait ends early once full says
// the waiting items make a whole group (nil: never; the same full as
// Spill's, for a queue that does both). Call it before the first Add. An item waiting in a gathering slot's queue can still be
// removed.
func (q *Queue[T]) Gather(wait time.Duration, full func(queue []T) bool) {
	q.gather, q.full = wait, full
}

// Spill keeps the queue to one group at a time while groups are quick:
// items that arrive while a group runs wait for it and go together in the
// next. Another slot opens for them only once every running group has
// run for after (a transaction stuck on a connection that hangs, or a
// database far away), or once full says the waiting items make a whole
// group (nil: never), up to the queue's slots. Fewer, larger groups cost
// a database less than the same items in groups side by side. Call it
// before the first Add; 0 (the default) opens every slot at once.
func (q *Queue[T]) Spill(after time.Duration, full func(queue []T) bool) {
	q.spill, q.full = after, full
}

// Add queues item and starts groups while slots are free.
func (q *Queue[T]) Add(item T) {
	q.mu.Lock()
	q.queue = append(q.queue, item)
	if len(q.wakers) > 0 && q.full != nil && q.full(q.queue) {
		for _, w := range q.wakers {
			close(w)
		}
		q.wakers = nil
	}
	q.mu.Unlock()
	q.dispatch()
}

// Remove takes item out of the queue if it still waits there, and
// reports whether it did: a caller that gives up (a partition revoked)
// leaves before its group starts; once taken into a group, its item runs.
func (q *Queue[T]) Remove(item T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.queue, item)
	if i < 0 {
		return false
	}
	q.queue = slices.Delete(q.queue, i, i+1)
	return true
}

// Len is how many items wait for a slot.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// dispatch starts groups while items wait and slots may open.
func (q *Queue[T]) dispatch() {
	for {
		q.mu.Lock()
		if len(q.queue) == 0 || len(q.started) >= q.slots || !q.mayOpenLocked() {
			q.mu.Unlock()
			return // the group that ends next (or the spill timer) looks again
		}
		start := time.Now()
		q.started = append(q.started, start)
		if q.gather > 0 {
			q.mu.Unlock()
			go q.gatherAndRun(start)
			return // an item arriving meanwhile tries the other slots
		}
		group := q.takeLocked()
		q.mu.Unlock()
		go func() {
			defer q.release(start)
			q.run(group)
		}()
	}
}

// mayOpenLocked reports whether a slot may open now. Without Spill, one
// may whenever it is free; with it, only when no group runs, the waiting
// items make a whole group, or the youngest group has run for spill:
// until then a timer waits for that moment.
func (q *Queue[T]) mayOpenLocked() bool {
	if q.spill <= 0 || len(q.started) == 0 || q.full != nil && q.full(q.queue) {
		return true
	}
	wait := q.spill - time.Since(q.started[len(q.started)-1])
	if wait <= 0 {
		return true
	}
	if q.spillTimer == nil {
		q.spillTimer = time.AfterFunc(wait, func() {
			q.mu.Lock()
			q.spillTimer = nil
			q.mu.Unlock()
			q.dispatch()
		})
	}
	return false
}

// release frees the slot taken at start and looks at the queue again:
// an item queued while every slot was in use found none.
func (q *Queue[T]) release(start time.Time) {
	q.mu.Lock()
	if i := slices.Index(q.started, start); i >= 0 {
		q.started = slices.Delete(q.started, i, i+1)
	}
	q.mu.Unlock()
	q.dispatch()
}

// takeLocked takes the next group out of the queue.
func (q *Queue[T]) takeLocked() []T {
	n := len(q.queue)
	group, rest := q.take(q.queue)
	q.queue = append(q.queue[:0], rest...)
	clear(q.queue[len(q.queue):n])
	return group
}

// gatherAndRun holds the slot taken at start for up to q.gather, or
// until the queue is full, then takes a group and runs it.
func (q *Queue[T]) gatherAndRun(start time.Time) {
	defer q.release(start)
	q.mu.Lock()
	if q.full == nil || !q.full(q.queue) {
		wake := make(chan struct{})
		q.wakers = append(q.wakers, wake)
		q.mu.Unlock()
		t := time.NewTimer(q.gather)
		select {
		case <-t.C:
		case <-wake:
		}
		t.Stop()
		q.mu.Lock()
		if i := slices.Index(q.wakers, wake); i >= 0 {
			q.wakers = slices.Delete(q.wakers, i, i+1)
		}
	}
	group := q.takeLocked()
	q.mu.Unlock()
	if len(group) > 0 {
		q.run(group)
	}
}

// First is a take that groups the first n items at most.
func First[T any](n int) func(queue []T) (group, rest []T) {
	return func(queue []T) ([]T, []T) {
		k := min(len(queue), n)
		return append([]T(nil), queue[:k]...), queue[k:]
	}
}
