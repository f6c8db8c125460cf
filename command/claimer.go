package command

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/internal/groupcommit"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
)

// claimer gives concurrent requests' claims a shared transaction (group
// commit). A request never waits for company: when no claim transaction
// runs its claim goes at once, alone if need be. While one runs, the
// claims that arrive queue up and the next transaction takes them all (up
// to maxBatch) in one transaction, one round trip and one commit. Another
// slot opens for them (up to concurrency) only once the running
// transaction has taken spillAfter, or a whole group waits: one at a time
// costs the database fewer commits, and a stuck transaction still holds
// back only its own claims.
//
// Each request gets its own result, read in its own position (a retried
// transaction recomputes them all, never mixing them up). A key repeated
// in a group is claimed by its first request, and the others find that
// claim. When a group fails for a reason of the data (not an outage), its
// claims are made again one by one, so that only the request at fault
// gets the error.
type claimer struct {
	store   *store.Store
	timeout time.Duration
	// groups counts the transactions and their claims (a histogram).
	groups prometheus.Observer
	queue  *groupcommit.Queue[*pendingClaim]
}

type pendingClaim struct {
	req  idemgate.ClaimRequest
	done chan claimResult
}

type claimResult struct {
	claim idemgate.Claim
	err   error
}

func newClaimer(st *store.Store, concurrency int, spillAfter time.Duration, maxBatch int, timeout time.Duration, groups prometheus.Observer) *claimer {
	c := &claimer{store: st, timeout: timeout, groups: groups}
	c.queue = groupcommit.New(concurrency, groupcommit.First[*pendingClaim](maxBatch), c.run)
	c.queue.Spill(spillAfter, func(q []*pendingClaim) bool { return len(q) >= maxBatch })
	return c
}

// claim claims req's key, in whatever group it joins. When ctx ends first
// the claim may still commit: the client's retry then finds it.
func (c *claimer) claim(ctx context.Context, req idemgate.ClaimRequest) (idemgate.Claim, error) {
	p := &pendingClaim{req: req, done: make(chan claimResult, 1)}
	c.queue.Add(p)
	select {
	case r := <-p.done:
		return r.claim, r.err
	case <-ctx.Done():
		return idemgate.Claim{}, ctx.Err()
	}
}

func (c *claimer) run(batch []*pendingClaim) {
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
