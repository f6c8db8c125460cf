// Package groupcommit gives concurrent callers' work shared transactions
// (group commit): the API's claims (command/claimer.go) and the
// projector's partitions' runs (projector/group.go). A caller never waits
// for company: while a slot is free its item goes at once, alone if need
// be; while every slot is busy, the items that arrive queue up, and the
// next free slot takes them together.
package groupcommit

import (
	"slices"
	"sync"
)

// Queue holds the items waiting for a slot.
type Queue[T comparable] struct {
	slots chan struct{}
	take  func(queue []T) (group, rest []T)
	run   func(group []T)

	mu    sync.Mutex
	queue []T
}

// New returns a queue that runs at most slots groups at once. take splits
// the waiting items, in their order, into the next group and the rest; it
// must return a group of its own (not a part of queue), at least one item
// when queue has one, and may reorder nothing. run applies a group and
// answers each of its callers; it runs on a goroutine of its own, in a
// slot.
func New[T comparable](slots int, take func(queue []T) (group, rest []T), run func(group []T)) *Queue[T] {
	return &Queue[T]{slots: make(chan struct{}, max(1, slots)), take: take, run: run}
}

// Add queues item and starts groups while slots are free.
func (q *Queue[T]) Add(item T) {
	q.mu.Lock()
	q.queue = append(q.queue, item)
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

func (q *Queue[T]) dispatch() {
	for {
		select {
		case q.slots <- struct{}{}:
		default:
			return // the group that ends next takes the queue
		}
		q.mu.Lock()
		n := len(q.queue)
		group, rest := q.take(q.queue)
		q.queue = append(q.queue[:0], rest...)
		clear(q.queue[len(q.queue):n])
		q.mu.Unlock()
		if len(group) == 0 {
			<-q.slots
			// An item queued while the slot was held found no slot: look
			// again now that it is free.
			if q.Len() == 0 {
				return
			}
			continue
		}
		go func() {
			defer func() {
				<-q.slots
				q.dispatch()
			}()
			q.run(group)
		}()
	}
}

// First is a take that groups the first n items at most.
func First[T any](n int) func(queue []T) (group, rest []T) {
	return func(queue []T) ([]T, []T) {
		k := min(len(queue), n)
		return append([]T(nil), queue[:k]...), queue[k:]
	}
}
