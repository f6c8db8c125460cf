package consumer

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// worker processes one assigned partition's records, in order.
type worker struct {
	r      *Runner
	tp     partition
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool
	wake   chan struct{}
}

func newWorker(r *Runner, tp partition) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	return &worker{r: r, tp: tp, ctx: ctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// push queues fetched records and returns how many wait; the caller
// pauses fetching the partition past the limit.
func (w *worker) push(recs []*kgo.Record) int {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	n := len(w.queue)
	if n >= w.r.cfg.QueueLimit {
		w.paused = true
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return n
}

// take waits for queued records and takes them all (up to one poll's
// worth), or returns nil once the worker is stopped.
func (w *worker) take() []*kgo.Record {
	for {
		w.mu.Lock()
		if n := len(w.queue); n > 0 {
			k := min(n, w.r.cfg.MaxPollRecords)
			batch := w.queue[:k:k]
			w.queue = w.queue[k:]
			resume := w.paused && len(w.queue) < w.r.cfg.QueueLimit/2
			if resume {
				w.paused = false
			}
			w.mu.Unlock()
			if resume {
				w.r.client.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.id}})
			}
			return batch
		}
		w.mu.Unlock()
		select {
		case <-w.ctx.Done():
			return nil
		case <-w.wake:
		}
	}
}

// run handles records until stopped, committing after each batch (and,
// when stopped in the middle of one, after the last record it
// completed).
func (w *worker) run() {
	defer close(w.done)
	for {
		batch := w.take()
		if batch == nil {
			return
		}
		last := w.process(batch)
		if last != nil {
			w.r.commit(last)
		}
		if last != batch[len(batch)-1] {
			return // stopped in the middle: the rest is the next owner's
		}
	}
}

// process handles batch in order and returns the last record done: runs
// of records go to the batch handler when there is one, and one at a time
// when it fails (or there is none).
func (w *worker) process(batch []*kgo.Record) (last *kgo.Record) {
	size := w.r.cfg.BatchSize
	for start := 0; start < len(batch); start += size {
		run := batch[start:min(start+size, len(batch))]
		if h := w.r.cfg.BatchHandler; h != nil && len(run) > 1 && w.ctx.Err() == nil {
			if err := h(w.ctx, run); err == nil {
				last = run[len(run)-1]
				continue
			}
		}
		for _, rec := range run {
			if !w.r.handle(w.ctx, rec) {
				return last
			}
			last = rec
		}
	}
	return last
}
