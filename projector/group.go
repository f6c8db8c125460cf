package projector

import (
	"context"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/internal/groupcommit"
)

// grouper gives the stretches of concurrent partitions a shared
// transaction (group commit), as the API's claimer does for claims. Each
// partition's worker hands its stretch and waits for its outcome; while
// every slot is busy, the stretches that arrive queue up, and the next
// free slot applies them all in one transaction. A lone stretch goes at
// once. Without it, each partition paid a transaction of its own for what
// one fetch brought it: at 500 commands/s over six partitions, one or two
// commands per transaction.
//
// A partition has one stretch in flight at most (its worker waits), so
// the order within a partition holds. When a group fails for a reason of
// the data, each stretch is applied again on its own, so that only the
// one at fault gets the error (the consumer then isolates its record).
type grouper struct {
	p     *Projector
	queue *groupcommit.Queue[*stretch]
}

// stretch is one partition's run of commands waiting for its group.
type stretch struct {
	cmds   []idemgate.Command
	parent func(operationID string) context.Context
	done   chan error
}

// groupSlots is how many group transactions run at once: one building
// while the other commits. More would only split the groups again.
const groupSlots = 2

// gatherWait is how long a free slot waits for company before it takes
// its group. One fetch brings runs to several partitions at once, and
// their workers hand them over within microseconds; without the wait the
// first run took a free slot alone, the second the other slot, and only
// the rest waited for a group: at 500 commands/s, about three
// transactions per fetch instead of one. The wait ends early once the
// waiting runs make a whole group (maxGroup commands); it adds at most
// this much to a command's completion.
const gatherWait = time.Millisecond

func newGrouper(p *Projector, maxGroup int) *grouper {
	g := &grouper{p: p}
	g.queue = groupcommit.New(groupSlots, func(q []*stretch) ([]*stretch, []*stretch) { return takeGroup(q, maxGroup) }, g.run)
	g.queue.Gather(gatherWait, func(q []*stretch) bool {
		n := 0
		for _, s := range q {
			n += len(s.cmds)
		}
		return n >= maxGroup
	})
	return g
}

// apply applies cmds (distinct operation ids) in whatever group they join
// and publishes their results. When ctx ends (the partition revoked, the
// process stopping) while the stretch still waits for a group, it leaves
// the queue and apply returns ctx's error: nothing of it started. Once in
// a group, apply returns when the group's transaction has ended: its own
// bound (attemptTimeout) limits the wait, as an attempt in hand.
func (g *grouper) apply(ctx context.Context, cmds []idemgate.Command, parent func(operationID string) context.Context) error {
	s := &stretch{cmds: cmds, parent: parent, done: make(chan error, 1)}
	g.queue.Add(s)
	select {
	case err := <-s.done:
		return err
	case <-ctx.Done():
		if g.queue.Remove(s) {
			return ctx.Err()
		}
		return <-s.done
	}
}

// takeGroup splits the queue, in order, into the next group and the rest:
// up to maxGroup commands (the first stretch always goes), and no stretch
// whose commands share an operation id with one already taken (a command
// re-emitted into another partition); those wait for a later group.
func takeGroup(queue []*stretch, maxGroup int) (group, rest []*stretch) {
	seen := map[string]bool{}
	n := 0
	for _, s := range queue {
		if len(group) > 0 && (n+len(s.cmds) > maxGroup || sharesID(s.cmds, seen)) {
			rest = append(rest, s)
			continue
		}
		for _, c := range s.cmds {
			seen[c.OperationID] = true
		}
		n += len(s.cmds)
		group = append(group, s)
	}
	return group, rest
}

func sharesID(cmds []idemgate.Command, seen map[string]bool) bool {
	for _, c := range cmds {
		if seen[c.OperationID] {
			return true
		}
	}
	return false
}

func (g *grouper) run(group []*stretch) {
	var cmds []idemgate.Command
	for _, s := range group {
		cmds = append(cmds, s.cmds...)
	}
	err := g.applyTx(cmds, group)
	// An outage's error is each stretch's too: it would meet it alone.
	if err == nil || !IsPermanent(err) || len(group) == 1 {
		for _, s := range group {
			s.done <- err
		}
		return
	}
	for _, s := range group {
		s.done <- g.applyTx(s.cmds, []*stretch{s})
	}
}

// applyTx applies cmds, the commands of group, in one transaction, then
// publishes each stretch's results under its own spans.
func (g *grouper) applyTx(cmds []idemgate.Command, group []*stretch) error {
	p := g.p
	actx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	applied, err := p.cfg.Store.ApplyBatch(actx, p.cfg.Name, cmds, p.effects, func() { p.cfg.Faults.Hit(fault.InProjectorTx) })
	if err != nil {
		return err
	}
	for _, a := range applied {
		p.observe(a.Command, a.Response)
	}
	p.cfg.Faults.Hit(fault.AfterProjectorTx) // a death here leaves the results to the relay
	owner := make(map[string]*stretch, len(cmds))
	for _, s := range group {
		for _, c := range s.cmds {
			owner[c.OperationID] = s
		}
	}
	p.results.publish(func(id string) context.Context { return owner[id].parent(id) }, applied...)
	return nil
}
