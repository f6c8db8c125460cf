package command

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
)

// claimer gives concurrent requests' claims a shared transaction (group
// commit). A request never waits for company: when a transaction slot is
// free its claim goes at once, alone if need be; while every slot is
// busy, the claims that arrive queue up and the next free slot takes them
// all (up to maxBatch) in one transaction, one round trip and one commit.
//
// Each request gets its own result, read in its own position (a retried
// transaction recomputes them all, never mixing them up). A key repeated
// in a group is claimed by its first request, and the others find that
// claim. When a group fails for a reason of the data (not an outage), its
// claims are made again one by one, so that only the request at fault
// gets the error.
type claimer struct {
	store    *store.Store
	maxBatch int
	timeout  time.Duration
	slots    chan struct{}
	// groups counts the transactions and their claims (a histogram).
	groups prometheus.Observer

	mu    sync.Mutex
	queue []*pendingClaim
}

type pendingClaim struct {
	req  idemgate.ClaimRequest
	done chan claimResult
}

type claimResult struct {
	claim idemgate.Claim
	err   error
}

func newClaimer(st *store.Store, concurrency, maxBatch int, timeout time.Duration, groups prometheus.Observer) *claimer {
	return &claimer{store: st, maxBatch: maxBatch, timeout: timeout, slots: make(chan struct{}, max(1, concurrency)), groups: groups}
}

// claim claims req's key, in whatever group it joins. When ctx ends first
// the claim may still commit: the client's retry then finds it.
func (c *claimer) claim(ctx context.Context, req idemgate.ClaimRequest) (idemgate.Claim, error) {
	p := &pendingClaim{req: req, done: make(chan claimResult, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	c.mu.Unlock()
	c.dispatch()
	select {
	case r := <-p.done:
		return r.claim, r.err
	case <-ctx.Done():
		return idemgate.Claim{}, ctx.Err()
	}
}

// dispatch starts a transaction for the queued claims while a slot is
// free.
func (c *claimer) dispatch() {
	for {
		select {
		case c.slots <- struct{}{}:
		default:
			return // the transaction that ends next takes the queue
		}
		c.mu.Lock()
		n := min(len(c.queue), c.maxBatch)
		batch := append([]*pendingClaim(nil), c.queue[:n]...)
		c.queue = append(c.queue[:0], c.queue[n:]...)
		c.mu.Unlock()
		if n == 0 {
			<-c.slots
			// A claim queued while the slot was held found no slot: look
			// again now that it is free.
			c.mu.Lock()
			empty := len(c.queue) == 0
			c.mu.Unlock()
			if empty {
				return
			}
			continue
		}
		go c.run(batch)
	}
}

func (c *claimer) run(batch []*pendingClaim) {
	defer func() {
		<-c.slots
		c.dispatch()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	c.groups.Observe(float64(len(batch)))
	reqs := make([]idemgate.ClaimRequest, len(batch))
	for i, p := range batch {
		reqs[i] = p.req
	}
	claims, err := c.store.ClaimKeys(ctx, reqs)
	if err != nil && len(batch) > 1 && !sqldb.IsTransient(err) {
		for _, p := range batch {
			one, err := c.store.ClaimKeys(ctx, []idemgate.ClaimRequest{p.req})
			if err != nil {
				p.done <- claimResult{err: err}
				continue
			}
			p.done <- claimResult{claim: one[0]}
		}
		return
	}
	for i, p := range batch {
		if err != nil {
			p.done <- claimResult{err: err}
			continue
		}
		p.done <- claimResult{claim: claims[i]}
	}
}
