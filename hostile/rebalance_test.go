package hostile

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/testenv"
)

// TestRebalanceDuringDatabaseHang (finding 7): a projector is busy with a
// backlog, its two group transactions in their attempts and its other
// partitions' runs waiting for a group, when the database hangs
// (SIGSTOP), and a second projector joins the group then. The rebalance
// completes (both members own partitions) within the 10 s bound of the
// attempts in hand (a revoked run that waits for a group leaves at once),
// far below the 60 s rebalance timeout a worker retrying for ever would
// have held it to; after SIGCONT every accepted command completes exactly
// once.
func TestRebalanceDuringDatabaseHang(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	pg, s := newOwnStack(t, "IDEMGATE_PARTITIONS", "4")
	a := s.serve()

	const n = 400
	locs := make([]string, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				r := a.postPayment(fmt.Sprintf("rb-%d", i), payment)
				if r.Status != 202 {
					t.Errorf("POST: %v", r)
					return
				}
				locs[i] = r.Header.Get("Location")
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// The second projector has its database pool, and waits for Kafka
	// (its bootstrap address is a proxy that refuses until healed).
	gate := testenv.NewNetFault(t, "tcp", s.Brokers[0])
	gate.Partition()
	second := s.Role("project-2", s.Environ("KAFKA_BROKERS", gate.Addr()), "project")
	second.WaitLog(regexp.MustCompile(`backend unreachable; retrying.*backend=kafka`), 60*time.Second)

	// The first projector is busy with its backlog when the database
	// hangs: a lock the test holds on processed_events, where every
	// application starts, keeps its two group transactions in their first
	// attempt, each holding a connection of its pool, and the runs of its
	// other partitions waiting for a group, until the database stops with
	// them in hand (without it the projector can drain most partitions
	// before the SIGSTOP, and the rebalance proves little).
	ctx := context.Background()
	lockConn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer lockConn.Close(ctx)
	lock, err := lockConn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `LOCK TABLE processed_events IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	metrics := heldAddr(t)
	first := s.Project("IDEMGATE_METRICS_ADDR", metrics)
	testenv.Eventually(t, 60*time.Second, "the first projector's 2 group transactions in their attempts", func() error {
		inUse, _ := scrape(t, "http://"+metrics+"/metrics", "").sum("idemgate_sql_pool_connections_in_use", `pool="projector"`)
		return testenv.Check(inUse == 2, "%v connections of its pool in use", inUse)
	})
	pg.freeze()
	before := assignments(t, s)
	gate.Heal()
	joined := time.Now()
	second.WaitLog(testenv.ProjectorUp, 30*time.Second)

	var after map[string][]int32
	testenv.Eventually(t, 40*time.Second, "the rebalance completed while the database hung", func() error {
		after = assignments(t, s)
		return testenv.Check(len(after) == 2 && allNonEmpty(after), "assignments %v", after)
	})
	took := time.Since(joined)
	t.Logf("database hung; second projector joined: assignments %v -> %v in %v", before, after, ms(took))
	if took > 25*time.Second {
		t.Errorf("the rebalance took %v, want well below the 60s rebalance timeout (< 25s)", took)
	}
	pg.thaw()
	thawed := time.Now()
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for _, loc := range locs {
		a.waitCompleted(loc, 90*time.Second)
	}
	t.Logf("after SIGCONT all %d commands completed in %v", n, ms(time.Since(thawed)))
	if got := s.Count(`SELECT count(*) FROM payments`); got != n {
		t.Fatalf("payments = %d, want %d", got, n)
	}
	if first.Exited() || second.Exited() {
		t.Fatal("a projector exited")
	}
}

// assignments describes the projectors' group: each member's partitions.
func assignments(t *testing.T, s *stack) map[string][]int32 {
	t.Helper()
	cl, err := kgo.NewClient(testenv.KafkaOptions(t, s.Brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	groups, err := kadm.NewClient(cl).DescribeGroups(ctx, s.Group)
	if err != nil {
		return nil
	}
	out := map[string][]int32{}
	for _, g := range groups {
		if g.State != "Stable" {
			return nil // mid-rebalance
		}
		for _, m := range g.Members {
			id := m.MemberID[:min(len(m.MemberID), 12)] // enough to tell them apart
			var ps []int32
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range c.Topics {
					ps = append(ps, tp.Partitions...)
				}
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			out[id] = ps
		}
	}
	return out
}

func allNonEmpty(m map[string][]int32) bool {
	for _, ps := range m {
		if len(ps) == 0 {
			return false
		}
	}
	return true
}
