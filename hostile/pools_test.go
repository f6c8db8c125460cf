package hostile

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate/testenv"
)

// TestStuckProjectorDoesNotStarveTheAPI (finding 9): in one process (dev
// mode on the suite's database and Kafka) the projector is stuck: the
// test holds a lock that every one of its transactions waits for, and its
// pool has as many connections (2, IDEMGATE_PROJECTOR_POOL_SIZE) as it
// runs group transactions, so that pool is exhausted (as its metrics
// show), while the runs of its other partitions (12 in all) wait for a
// group. The API, on a pool of its own that no request waits on, keeps
// answering POST, GET and /readyz; once the lock is released everything
// completes.
func TestStuckProjectorDoesNotStarveTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	s := newStack(t, "IDEMGATE_PARTITIONS", "12", "IDEMGATE_PROJECTOR_POOL_SIZE", "2")
	addr := heldAddr(t)
	a := devAPI(t, s.Role("dev", s.Environ(), "dev", "--addr", addr, "--data-dir", t.TempDir()), addr)
	a.WaitReady(a.Base, 90*time.Second)

	_, paymentPath := a.completed("warm")

	// Every application starts by recording its event in processed_events:
	// with the table locked, each group transaction waits on the lock.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	lock, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, `LOCK TABLE processed_events IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var locs []string
	for i := range 60 {
		r := a.postPayment(fmt.Sprintf("stuck-%d", i), payment)
		if r.Status != 202 {
			t.Fatalf("POST: %v", r)
		}
		locs = append(locs, r.Header.Get("Location"))
	}
	const waitingSQL = `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO processed_events%'`
	var waiting int
	testenv.Eventually(t, 20*time.Second, "the projector pool's 2 transactions wait on the lock", func() error {
		waiting = s.Count(waitingSQL)
		return testenv.Check(waiting >= 2, "%d waiting", waiting)
	})
	completedBefore := s.Count(`SELECT count(*) FROM outbox`)
	// The pools as the process reports them: the projector's exhausted,
	// the API's not waited on.
	pools := func() (projectorInUse, projectorMax, apiWaits float64) {
		m := scrape(t, a.Base+"/metrics", "")
		projectorInUse, _ = m.sum("idemgate_sql_pool_connections_in_use", `pool="projector"`)
		projectorMax, _ = m.sum("idemgate_sql_pool_max_connections", `pool="projector"`)
		apiWaits, found := m.sum("idemgate_sql_pool_acquire_waits_total", `pool="api"`)
		if !found {
			t.Fatal("no idemgate_sql_pool_acquire_waits_total for the api pool")
		}
		return projectorInUse, projectorMax, apiWaits
	}
	inUse, size, apiWaitsBefore := pools()
	if inUse != size || size != 2 {
		t.Fatalf("the projector's pool has %v of %v connections in use, want all 2: it is not exhausted, the test would prove nothing", inUse, size)
	}

	// The API meanwhile, for 5 s. A request that waited on the projector's
	// pool would get a 503 at the API's own deadline (IDEMGATE_DB_TIMEOUT,
	// 2 s), as before finding 9's fix; one on the API's pool never waits
	// for a connection (the requests come one at a time).
	var lat []time.Duration
	start := time.Now()
	for i := 0; time.Since(start) < 5*time.Second; i++ {
		post := a.postPayment(fmt.Sprintf("during-%d", i), payment)
		op := a.get(post.Header.Get("Location"))
		pay := a.get(paymentPath)
		ready := a.get("/readyz")
		for _, c := range []struct {
			what string
			r    testenv.Reply
			want int
		}{{"POST", post, 202}, {"GET operation", op, 200}, {"GET payment", pay, 200}, {"GET /readyz", ready, 200}} {
			lat = append(lat, c.r.Took)
			if c.r.Err != nil || c.r.Status != c.want {
				t.Errorf("%s while the projector is stuck: %v, want %d", c.what, c.r, c.want)
			}
		}
		if post.Status == 202 {
			locs = append(locs, post.Header.Get("Location"))
		}
		time.Sleep(50 * time.Millisecond) // the client's pace, not a wait
	}
	stillWaiting := s.Count(waitingSQL)
	inUseAfter, _, apiWaitsAfter := pools()
	completedDuring := s.Count(`SELECT count(*) FROM outbox`) - completedBefore
	if err := lock.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	t.Logf("projector stuck (%d then %d of its transactions waiting on the lock, %v then %v of its pool's %v connections in use, %d completed meanwhile); API: %d requests, %v waits for a connection, median %v, max %v",
		waiting, stillWaiting, inUse, inUseAfter, size, completedDuring, len(lat), apiWaitsAfter-apiWaitsBefore, ms(percentile(lat, 50)), ms(percentile(lat, 100)))
	if inUseAfter != size {
		t.Errorf("the projector's pool has %v of %v connections in use at the end: it was not stuck throughout", inUseAfter, size)
	}
	if apiWaitsAfter != apiWaitsBefore {
		t.Errorf("%v of the API's acquisitions waited for a connection while the projector was stuck: the pools are not apart", apiWaitsAfter-apiWaitsBefore)
	}
	if completedDuring != 0 {
		t.Errorf("%d commands completed while the projector was meant to be stuck", completedDuring)
	}
	for _, loc := range locs {
		a.waitCompleted(loc, 60*time.Second)
	}
	t.Logf("lock released: all %d commands completed in %v", len(locs), ms(time.Since(released)))
	if got := s.Count(`SELECT count(*) FROM payments`); got != len(locs)+1 {
		t.Fatalf("payments = %d, want %d", got, len(locs)+1)
	}
}
