package hostile

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// TestSIGTERMAnswersWaiters (finding 4): 40 clients wait for their
// outcome (Prefer: wait=30) on a serve whose commands nobody projects;
// SIGTERM must answer every one of them with its 202 at once, exit 0,
// and lose no command: a projector started afterwards completes all 40.
func TestSIGTERMAnswersWaiters(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	s := newStack(t)
	a := s.serve()

	const n = 40
	replies := make([]testenv.Reply, n)
	answeredAt := make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = a.postPayment(fmt.Sprintf("wait-%d", i), payment, "Prefer", "wait=30")
			answeredAt[i] = time.Now()
		}()
	}
	// Every request is in the handler, claimed and waiting for its
	// outcome (accepted, and still in flight).
	testenv.Eventually(t, 15*time.Second, "every request waiting for its outcome", func() error {
		m := scrape(t, a.Base+"/metrics", "")
		inFlight, _ := m.sum("idemgate_requests_in_flight")
		accepted, _ := m.sum("idemgate_commands_accepted_total")
		return testenv.Check(inFlight == n && accepted == n, "requests in flight %v, accepted %v, want %d", inFlight, accepted, n)
	})
	sent := time.Now()
	code, took := a.Terminate(20 * time.Second)
	wg.Wait()

	var slowest time.Duration
	for i, r := range replies {
		if r.Err != nil || r.Status != 202 || r.Header.Get("Location") == "" {
			t.Errorf("waiter %d: %v, want 202 with a Location", i, r)
			continue
		}
		slowest = max(slowest, answeredAt[i].Sub(sent))
	}
	if code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0", code)
	}
	if slowest > 3*time.Second {
		t.Errorf("the last waiter was answered %v after SIGTERM, want at once (< 3s)", slowest)
	}
	t.Logf("SIGTERM with %d waiters: %d answered 202 (the last %v after the signal), serve exited %d in %v",
		n, n, ms(slowest), code, ms(took))

	// Nothing was dropped: the commands were emitted before the exit.
	s.Project()
	b := s.serve()
	for _, r := range replies {
		b.waitCompleted(r.Header.Get("Location"), 60*time.Second)
	}
	if got := s.Count(`SELECT count(*) FROM payments`); got != n {
		t.Fatalf("payments = %d, want %d", got, n)
	}
}
