package netfault

import (
	"net/http"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// dbFaultStack is a stack whose serve reaches the database through a
// NetFault; the projector reaches it directly. Kafka is the suite's.
func dbFaultStack(t *testing.T) (s *testenv.Stack, f *testenv.NetFault, a *testenv.API) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	db := env.NewDatabase(t, migrations(t)...)
	f, proxied := testenv.NewDBNetFault(t, db)
	s = testenv.NewStack(t, db, env.Kafka(t), "IDEMGATE_LEASE", "2s", "IDEMGATE_SWEEP_INTERVAL", "500ms")
	a = s.Serve("DATABASE_URL", proxied)
	p := s.Project()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("claims %d, outbox %d, pending rows %d", s.Count(`SELECT count(*) FROM idempotency_claims`),
				s.Count(`SELECT count(*) FROM outbox`), s.Count(`SELECT count(*) FROM command_pending`))
			diagnose(t, s, a.Proc, p)
		}
	})
	return s, f, a
}

// readyz is /readyz's status, or 0 if it does not answer within the
// deadline.
func readyz(base string) (int, time.Duration) {
	r := testenv.Do("GET", base+"/readyz", "")
	if r.Err != nil || r.Took > deadline+slack {
		return 0, r.Took
	}
	return r.Status, r.Took
}

// TestDatabaseLatency: 200 ms more on every round trip between serve and
// the database. Every command is still answered 202 within the deadline
// (none 503), then its stored answer is replayed, the same bytes each
// time; another body under a used key gets 409; one claim and one
// payment per key.
func TestDatabaseLatency(t *testing.T) {
	s, f, a := dbFaultStack(t)
	f.Latency(200 * time.Millisecond)
	l := newLedger(t, a.Base, "")
	stop := l.load(4)
	<-time.After(8 * time.Second) // how long the load runs: no wait for an event
	stop()
	l.settle(60 * time.Second)
	lost, doubled := l.check(s)
	if n := l.counts[http.StatusServiceUnavailable]; n > 0 {
		t.Errorf("%d commands answered 503 with 200 ms of latency, want every one 202", n)
	}
	if a.Exited() {
		t.Errorf("serve exited")
	}
	t.Logf("FIGURES latency 200ms serve<->database: %d commands, answers %v, slowest %v, longest time without a 202 %v; lost %d, doubled %d",
		len(l.keys), l.counts, ms(l.slowest), ms(l.maxGap), lost, doubled)
}

// TestDatabasePartition: serve is cut from the database for 5 s (open
// connections closed, new ones refused) under load. Meanwhile every
// command is answered within the deadline, 202 only for a claimed
// command, otherwise 503 with Retry-After; /readyz says not ready; serve
// does not exit. After healing, 202 again without a restart, and every
// command accepted before or during is applied exactly once.
func TestDatabasePartition(t *testing.T) {
	s, f, a := dbFaultStack(t)
	dbFault(t, s, a, "partition 5s serve<->database", f.Partition, f.Heal)
}

// TestDatabaseHalfOpen: every connection between serve and the database
// hangs for 5 s, passing nothing and never closing, new ones included;
// the connections that hung stay hung after healing, as toward a peer
// that vanished. Only serve's own deadlines can notice: the same promises
// as through a partition, and serve recovers by dropping the hung
// connections, without a restart.
func TestDatabaseHalfOpen(t *testing.T) {
	s, f, a := dbFaultStack(t)
	dbFault(t, s, a, "half-open 5s serve<->database", f.HalfOpen, f.Heal)
}

// dbFault runs a fault of 5 s between serve and the database under load
// and checks the promises through it and after it.
func dbFault(t *testing.T, s *testenv.Stack, a *testenv.API, name string, fault, heal func()) {
	t.Helper()
	l := newLedger(t, a.Base, "")
	stop := l.loadBeforeFault(4)

	during := l.window()
	faultAt := time.Now()
	fault()
	testenv.Eventually(t, deadline+slack, "/readyz says not ready", func() error {
		status, took := readyz(a.Base)
		return testenv.Check(status == http.StatusServiceUnavailable, "/readyz answered %d after %v", status, ms(took))
	})
	notReadyIn := time.Since(faultAt)
	for time.Since(faultAt) < 5*time.Second { // the fault's length: the clients' load goes on meanwhile
		if status, took := readyz(a.Base); status != http.StatusServiceUnavailable {
			t.Errorf("/readyz during the fault: %d after %v, want 503 within the deadline", status, ms(took))
		}
		if a.Exited() {
			t.Fatalf("serve exited during the fault: %v", a.State())
		}
	}
	heal()
	healedAt := time.Now()
	answers := during()
	a.WaitReady(a.Base, 30*time.Second)
	readyAfter := time.Since(healedAt)
	var first202 time.Duration
	testenv.Eventually(t, 30*time.Second, "a new command gets a 202 after healing", func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.last202.After(healedAt) {
			first202 = l.last202.Sub(healedAt)
			return nil
		}
		return testenv.Check(false, "no 202 since healing")
	})
	<-time.After(3 * time.Second) // the load after healing: how long it runs, not a wait
	stop()

	l.settle(90 * time.Second)
	lost, doubled := l.check(s)
	if answers[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 during the fault (answers %v): was the database reached around the proxy?", answers)
	}
	if a.Exited() {
		t.Errorf("serve exited: %v", a.State())
	}
	t.Logf("FIGURES %s: %d commands; answers during the fault %v, slowest answer %v; /readyz 503 %v after the fault began; "+
		"ready %v and a 202 %v after healing; longest time without a 202 %v; lost %d, doubled %d",
		name, len(l.keys), answers, ms(l.slowest), ms(notReadyIn), ms(readyAfter), ms(first202), ms(l.maxGap), lost, doubled)
}
