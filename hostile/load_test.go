package hostile

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// load posts n payments from clients concurrent clients (each on its
// own keep-alive connection), keys prefix-0 ... prefix-(n-1), and
// returns their Locations; with read, each client also reads the
// operation it was answered. Any answer but 202 (200 for a read) fails
// the test.
func load(t *testing.T, a *api, prefix string, n, clients int, read bool) []string {
	t.Helper()
	locs := make([]string, n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() > 10 {
					return
				}
				r := a.postPayment(fmt.Sprintf("%s-%d", prefix, i), payment)
				if r.Err != nil || r.Status != 202 {
					if failed.Add(1) <= 10 {
						t.Errorf("POST %s-%d: %v", prefix, i, r)
					}
					continue
				}
				locs[i] = r.Header.Get("Location")
				if read {
					if g := a.get(locs[i]); g.Err != nil || g.Status != 200 {
						if failed.Add(1) <= 10 {
							t.Errorf("GET %s: %v", locs[i], g)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	return locs
}

// TestLagMetricDuringBacklog (finding 6): 10,000 commands accepted while
// no projector runs make a backlog; a projector started then reports it
// in idemgate_consumer_lag_records (measured at the broker, from its
// start, before its group has committed anything), and the gauge returns
// to 0 once the backlog is projected. No sample reads less than the
// commands still to complete: the gauge never hides a backlog.
func TestLagMetricDuringBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	s := newStack(t, "IDEMGATE_LEASE", "10m") // no re-emission inflates the backlog
	a := s.serve()
	const n = 10_000
	start := time.Now()
	load(t, a, "backlog", n, 32, false)
	accepted := time.Since(start)
	// Every event in Kafka before the projector starts: from then on the
	// log-end offsets stay at n.
	s.waitCount(0, 30*time.Second, `SELECT count(*) FROM command_pending`)

	maddr := heldAddr(t)
	s.Project("IDEMGATE_METRICS_ADDR", maddr, "IDEMGATE_LAG_INTERVAL", "200ms")
	projStart := time.Now()
	url := "http://" + maddr + "/metrics"
	var samples []float64
	maxLag := 0.0
	var zeroAt time.Duration
	testenv.Eventually(t, 120*time.Second, "the lag gauge back to 0 after the backlog", func() error {
		lag, found := scrape(t, url, "").sum("idemgate_consumer_lag_records", `group="`+s.Group+`"`)
		if found {
			// The gauge was measured before this scrape, so against
			// committed offsets no further than the completions counted
			// now.
			left := n - s.Count(`SELECT count(*) FROM outbox`)
			if lag < float64(left) || lag > n {
				t.Fatalf("lag gauge %v with %d of %d commands still to complete; want between them", lag, left, n)
			}
			samples = append(samples, lag)
			maxLag = max(maxLag, lag)
		}
		if found && lag == 0 && maxLag > 0 {
			zeroAt = time.Since(projStart)
			return nil
		}
		return fmt.Errorf("lag samples %v", samples)
	})
	completed := s.Count(`SELECT count(*) FROM outbox`) // a claim is completed once its outcome is recorded
	t.Logf("%d commands accepted by serve alone in %v (%.0f/s); projector started: lag %v at its first sample, max %v, back to 0 after %v (%d samples); %d completed then",
		n, ms(accepted), n/accepted.Seconds(), samples[0], maxLag, ms(zeroAt), len(samples), completed)
	if maxLag < n/2 {
		t.Errorf("the lag gauge peaked at %v during a backlog of %d", maxLag, n)
	}
	if completed != n {
		t.Errorf("lag 0 but %d of %d commands completed", completed, n)
	}
}

// TestNoTransactionGivesUpUnderLoad (finding 8): 4,000 commands from 32
// concurrent clients, each reading its operation after the 202, while
// serve, project and relay all run, so that the claims, the emitter's
// published marks, the reads, the projector's completions and the
// relay's sent marks meet on the same commands. No transaction of any pool gives
// up (idemgate_sql_tx_gave_up_total stays 0 on every process); the
// retries are reported. The relay's metrics end at a backlog of 0, and
// the projector's and the relay's publish counters add up to every
// outcome.
func TestNoTransactionGivesUpUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	s := newStack(t, "IDEMGATE_PARTITIONS", "6")
	a := s.serve()
	pm, rm := heldAddr(t), heldAddr(t)
	s.Project("IDEMGATE_METRICS_ADDR", pm)
	s.Relay("IDEMGATE_METRICS_ADDR", rm)

	const n = 4000
	start := time.Now()
	locs := load(t, a, "load", n, 32, true)
	accepted := time.Since(start)
	took := s.waitCount(n, 120*time.Second, `SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL`)
	for _, loc := range locs[:50] {
		a.waitCompleted(loc, 10*time.Second)
	}

	procs := map[string]string{"serve": a.Base + "/metrics", "project": "http://" + pm + "/metrics", "relay": "http://" + rm + "/metrics"}
	retries, gaveUp := map[string]float64{}, map[string]float64{}
	for name, url := range procs {
		m := scrape(t, url, "")
		if v, _ := m.sum("idemgate_sql_tx_gave_up_total"); v != 0 {
			gaveUp[name] = v
			t.Errorf("%s: idemgate_sql_tx_gave_up_total = %v, want 0", name, v)
		}
		for _, pool := range []string{"api", "background", "projector", "relay"} {
			if v, ok := m.sum("idemgate_sql_tx_retries_total", `pool="`+pool+`"`); ok {
				retries[name+"/"+pool] = v
			}
		}
	}
	// The relay measures its backlog after each pass: wait for the pass
	// after the last mark.
	var published, byProjector, byRelay, backlog, oldest float64
	var okB, okO bool
	// Poll, not Eventually: the checks below say what is wrong.
	_ = testenv.Poll(t.Context(), 10*time.Second, func() error {
		relay := scrape(t, procs["relay"], "")
		byRelay, _ = relay.sum("idemgate_relay_published_total")
		backlog, okB = relay.sum("idemgate_relay_backlog")
		oldest, okO = relay.sum("idemgate_relay_oldest_unsent_age_seconds")
		byProjector, _ = scrape(t, procs["project"], "").sum("idemgate_projector_results_published_total")
		published = byProjector + byRelay
		return testenv.Check(okB && okO && backlog == 0 && oldest == 0 && published >= n,
			"backlog %v, oldest %v, published %v", backlog, oldest, published)
	})
	t.Logf("%d commands from 32 clients accepted in %v (%.0f/s), all published as results %v later; transactions given up %v; retries by process/pool %v; published by the projector %v, by the relay %v; relay backlog %v, oldest unsent %vs",
		n, ms(accepted), n/accepted.Seconds(), ms(took), gaveUp, retries, byProjector, byRelay, backlog, oldest)
	// The projector publishes each result after its commit; the relay
	// what stays unsent past its grace: together, every one.
	if published < n {
		t.Errorf("results published: %v by the projector + %v by the relay, want at least %d", byProjector, byRelay, n)
	}
	if !okB || !okO || backlog != 0 || oldest != 0 {
		t.Errorf("relay backlog %v (exported %v), oldest unsent age %v (exported %v); want 0 and 0 once everything is sent", backlog, okB, oldest, okO)
	}
}
