package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// Issue 17: a crash of idemgate is never reported as a failure of the
// upstream. These tests run the projector as a process of its own, kill
// it with -9, and restart it as a process manager would.

// supervisor runs `idemgate project` (this test binary, as the binary:
// selfProc) and starts it again whenever it dies, until the test ends.
type supervisor struct {
	*testenv.Proc

	mu     sync.Mutex
	deaths int // ended by SIGKILL
	exits  []string
	stop   bool
}

// supervise starts the supervised projector; extra are name/value pairs
// over the stack's variables.
func supervise(t testing.TB, s *stack, extra ...string) *supervisor {
	if os.Getenv("KAFKA_BROKERS") != "" {
		// A static member takes its partitions back at once when started
		// again after a kill -9 (kfake has no static membership: there a
		// restart waits for the dead member's session to time out).
		extra = append(extra, "IDEMGATE_INSTANCE_ID", "project-"+testenv.Random(4))
	}
	sup := &supervisor{Proc: selfProc(t, "supervised projector", s.Environ(extra...), "project")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			sup.mu.Lock()
			stop := sup.stop
			var err error
			if !stop {
				err = sup.Start()
			}
			sup.mu.Unlock()
			if stop {
				return
			}
			if err != nil {
				t.Errorf("start the projector: %v", err)
				return
			}
			<-sup.Done()
			sup.mu.Lock()
			st := sup.State()
			if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				sup.deaths++
			} else {
				sup.exits = append(sup.exits, st.String())
			}
			stop = sup.stop
			sup.mu.Unlock()
			if stop {
				return
			}
			time.Sleep(100 * time.Millisecond) // the restart policy, as a process manager's: behaviour under test, not a wait
		}
	}()
	t.Cleanup(func() { // before the Proc's own: no restart once it is stopped
		sup.mu.Lock()
		sup.stop = true
		sup.mu.Unlock()
		if !sup.Stop(20 * time.Second) {
			t.Errorf("the supervised projector did not exit within 20s of SIGTERM; killed")
		}
		<-done
	})
	return sup
}

// kill sends SIGKILL to the running projector, if any.
func (sup *supervisor) kill() {
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if !sup.Exited() {
		_ = sup.Signal(syscall.SIGKILL)
	}
}

func (sup *supervisor) counts() (deaths int, exits []string) {
	sup.mu.Lock()
	defer sup.mu.Unlock()
	return sup.deaths, append([]string(nil), sup.exits...)
}

// TestGatewayCrashesAreNotFailures is the chaos of issue 17 with the
// default call budget: the projector dies after the upstream answered one
// call in four (projector.after-upstream-call=0.25), killing every call
// it has in flight, and is restarted each time. Every accepted order
// must end with the upstream's own answer, applied once: no stored 502,
// no command set aside.
func TestGatewayCrashesAreNotFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs projectors as child processes")
	}
	u := startUpstream(t)
	s := startRoles(t, []string{"serve", "relay"}, "IDEMGATE_ROUTES", u.routesFile(t), "IDEMGATE_SWEEP_INTERVAL", "200ms")
	sup := supervise(t, s, "IDEMGATE_FAULTS", "projector.after-upstream-call=0.25")
	const orders, clients = 100, 4
	locs, nonces := make([]string, orders), make([]string, orders)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < orders; i += clients {
				nonces[i] = testenv.Random(8)
				r, err := rawPost(s.base, "/v1/orders", "key-a", fmt.Sprintf("crash-%d", i), orderBody("ok", nonces[i]))
				if err != nil || r.Status != 202 {
					t.Errorf("order %d: %d %v", i, r.Status, err)
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
	testenv.Eventually(t, 5*time.Minute, "every order completed", func() error {
		n := s.countNow(`SELECT count(*) FROM outbox`)
		return testenv.Check(n == orders, "%d of %d", n, orders)
	})
	for i, loc := range locs {
		mustOneEffect(t, s, u, fmt.Sprintf("crash-%d", i), "ok", nonces[i], loc, 201)
	}
	deaths, exits := sup.counts()
	var attempts, failures, unfinished, mostUnfinished, longestRun, quarantined int
	s.scanNow(`SELECT sum(attempts), sum(failures), sum(unfinished), max(unfinished), max(unfinished_streak), count(outcome_unknown_at)
FROM call_attempts`, nil, &attempts, &failures, &unfinished, &mostUnfinished, &longestRun, &quarantined)
	t.Logf("%d orders, %d attempts, %d projector deaths, %d attempts unfinished (at most %d for one order, %d in a row), %d observed failures, %d quarantined; other exits: %v",
		orders, attempts, deaths, unfinished, mostUnfinished, longestRun, failures, quarantined, exits)
	if deaths == 0 || unfinished == 0 {
		t.Fatalf("%d deaths, %d unfinished attempts: the fault never fired, the test proved nothing", deaths, unfinished)
	}
	mustEqual(t, "observed failures", failures, 0)
	mustEqual(t, "quarantined", quarantined, 0)
}

// TestGatewayCrashLoopIsQuarantined: one order kills its projector on
// every attempt (the upstream applies it, then the projector dies before
// it reads the answer, as a crash on the answer would). After the default
// 12 unfinished attempts in a row it is quarantined as outcome unknown:
// nothing is stored, a retry gets 202 with that state, the operation, the
// key lookup, `idemgate list` and the gauge show it, and the other orders
// complete. Redrive resolves it with one more call under the same key:
// the upstream's own answer, one effect.
func TestGatewayCrashLoopIsQuarantined(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs projectors as child processes")
	}
	u := startUpstream(t)
	s := startRoles(t, []string{"serve", "relay"}, "IDEMGATE_ROUTES", u.routesFile(t), "IDEMGATE_SWEEP_INTERVAL", "200ms")
	sup := supervise(t, s)
	poison := testenv.Random(8)
	u.setAfterEffect(func(nonce string) {
		if nonce == poison {
			sup.kill()
		}
	})
	loc := gatewayCommand(t, s, "poison", "ok", poison)
	id := strings.TrimPrefix(loc, "/v1/operations/")
	var others []string
	nonces := map[string]string{}
	for i := range 20 {
		nonce := testenv.Random(8)
		l := gatewayCommand(t, s, fmt.Sprintf("healthy-%d", i), "ok", nonce)
		others, nonces[l] = append(others, l), nonce
	}
	var view struct {
		Status   string `json:"status"`
		Upstream struct {
			Attempts, Failures, Unfinished int
			LastError                      string `json:"last_error"`
			OutcomeUnknownSince            string `json:"outcome_unknown_since"`
		} `json:"upstream"`
	}
	testenv.Eventually(t, 3*time.Minute, "the poison order quarantined", func() error {
		r := s.do("GET", loc, "key-a", "", "", "")
		return testenv.Check(json.Unmarshal(r.Body, &view) == nil && view.Status == "outcome_unknown", "operation %s", r.Body)
	})
	if view.Upstream.Attempts != 12 || view.Upstream.Unfinished != 12 || view.Upstream.Failures != 0 || view.Upstream.OutcomeUnknownSince == "" ||
		!strings.Contains(view.Upstream.LastError, "attempt 12 ended without an outcome") {
		t.Fatalf("operation view %+v: want 12 attempts, all unfinished, none failed", view)
	}
	for i, l := range others {
		mustOneEffect(t, s, u, fmt.Sprintf("healthy-%d", i), "ok", nonces[l], l, 201)
	}
	if deaths, _ := sup.counts(); deaths != 12 {
		t.Fatalf("%d projector deaths, want 12 (one per attempt, then no more)", deaths)
	}
	mustEqual(t, "outcomes recorded for the poison order", s.countNow(`SELECT count(*) FROM outbox WHERE operation_id = $1`, id), 0)

	r := s.postWith("/v1/orders", "key-a", []string{"poison"}, orderBody("ok", poison))
	mustEqual(t, "retry status", r.Status, 202)
	mustEqual(t, "retry Location", r.Header.Get("Location"), loc)
	mustEqual(t, "retry body", string(r.Body), `{"operation_id":"`+id+`","status":"outcome_unknown"}`)
	mustEqual(t, "retry Idempotent-Replayed", r.Header.Get("Idempotent-Replayed"), "true")
	if r := s.do("GET", "/v1/idempotency-keys/orders.create/poison", "key-a", "", "", ""); !bytes.Contains(r.Body, []byte(`"state":"outcome_unknown"`)) {
		t.Fatalf("key lookup: %d %s", r.Status, r.Body)
	}
	getenv := func(k string) string { return s.vars[k] }
	var out strings.Builder
	if err := run(t.Context(), []string{"list", "--state", "outcome_unknown"}, getenv, &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), id) || !strings.Contains(out.String(), "outcome_unknown") || !strings.Contains(out.String(), "12 unfinished") {
		t.Fatalf("list --state outcome_unknown (%v):\n%s", err, out.String())
	}
	testenv.Eventually(t, 30*time.Second, "the gauge idemgate_commands_outcome_unknown at 1", func() error {
		v, err := s.metric("idemgate_commands_outcome_unknown")
		if err != nil {
			return err
		}
		return testenv.Check(v == 1, "at %v", v)
	})

	u.setAfterEffect(nil) // fixed: the process survives the answer now
	if err := run(t.Context(), []string{"redrive", id}, getenv, io.Discard, io.Discard); err != nil {
		t.Fatalf("redrive: %v", err)
	}
	mustOneEffect(t, s, u, "poison", "ok", poison, loc, 201)
}

// TestGatewayUpstreamDownAMinute: with the default settings, an upstream
// that is down for 60 s (a deploy, a restart) dead-letters nothing: its
// commands keep failing in an observed way, within the call budget's
// span of time, and complete once it is back.
func TestGatewayUpstreamDownAMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs PostgreSQL and takes a minute")
	}
	u := startUpstream(t)
	s := startStack(t, "IDEMGATE_ROUTES", u.routesFile(t))
	down := time.Now()
	u.down()
	var locs, nonces []string
	for i := range 5 {
		nonce := testenv.Random(8)
		locs, nonces = append(locs, gatewayCommand(t, s, fmt.Sprintf("down-%d", i), "ok", nonce)), append(nonces, nonce)
	}
	// The orders queue behind each other on their partitions: the first of
	// each is the one that keeps failing.
	testenv.Eventually(t, 30*time.Second, "an order failed", func() error {
		return testenv.Check(s.countNow(`SELECT count(*) FROM call_attempts WHERE failures > 0`) > 0, "no failure recorded")
	})
	time.Sleep(time.Until(down.Add(60 * time.Second))) // the outage itself: a minute, whatever the test observes (what is tested, not a wait)
	var failures, most int
	s.scanNow(`SELECT coalesce(sum(failures), 0), coalesce(max(failures), 0) FROM call_attempts`, nil, &failures, &most)
	u.up()
	for i, loc := range locs {
		mustOneEffect(t, s, u, fmt.Sprintf("down-%d", i), "ok", nonces[i], loc, 201)
	}
	t.Logf("%d observed failures during the minute's outage (at most %d for one order), none dead-lettered", failures, most)
	if most <= 5 {
		t.Fatalf("at most %d failures for one order: the outage must outlast the default count of 5 failures, or the test proves nothing", most)
	}
	mustEqual(t, "records on the dead-letter topic", len(s.topicRecords(s.topics.DeadLetter)), 0)
}
