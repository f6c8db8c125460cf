package hostile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// TestDatabaseOutageLogsAreThrottled (finding 10, logs): PostgreSQL stops
// for 20 s under serve, project and relay, while a client keeps trying a
// command every 250 ms. Each process logs a handful of lines about it,
// not one per failed attempt (the relay alone retries 5 times a second);
// once the database is back the commands go through.
func TestDatabaseOutageLogsAreThrottled(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	pg, s := newOwnStack(t, "IDEMGATE_SWEEP_INTERVAL", "200ms")
	a := s.serve()
	procs := map[string]*testenv.Proc{"serve": a.Proc, "project": s.Project(), "relay": s.Relay()}
	a.completed("warm")

	downAt := time.Now()
	pg.down()
	const outage = 20 * time.Second
	statuses := map[int]int{}
	var keys []string
	for i := 0; time.Since(downAt) < outage; i++ {
		key := fmt.Sprintf("outage-%d", i)
		r := a.postPayment(key, payment)
		statuses[r.Status]++
		keys = append(keys, key)
		time.Sleep(250 * time.Millisecond) // the clients' pace through the outage, not a wait
	}
	upAt := time.Now()
	lines := map[string]int{}
	for name, p := range procs {
		// One access-log line per request is the point of the access log;
		// what must not scale with the outage is the rest.
		var ls []testenv.LogLine
		for _, l := range p.Log.Between(downAt, upAt) {
			if !strings.Contains(l.Text, `msg=request `) {
				ls = append(ls, l)
			}
		}
		lines[name] = len(ls)
		if len(ls) > 12 {
			var b strings.Builder
			for _, l := range ls[:min(len(ls), 15)] {
				b.WriteString(l.Text + "\n")
			}
			t.Errorf("%s logged %d lines in a %v database outage, want a handful (<= 12); the first:\n%s", name, len(ls), outage, b.String())
		}
	}
	pg.up()
	var locs []string
	for _, key := range keys {
		r := a.postPayment(key, payment)
		if r.Status != 202 {
			t.Fatalf("POST %s after the outage: %v", key, r)
		}
		locs = append(locs, r.Header.Get("Location"))
	}
	for _, loc := range locs {
		a.waitCompleted(loc, 60*time.Second)
	}
	t.Logf("PostgreSQL down %v, a client POST every 250ms (answers %v): log lines meanwhile %v; after the restart all %d commands completed in %v",
		outage, statuses, lines, len(keys), ms(time.Since(upAt)))
}

// TestRelayDuringKafkaOutage (finding 10, relay metrics and logs): the
// relay's Kafka (a kfake cluster of the test's own, with its log on disk)
// goes away for 20 s while commands keep completing. The relay's backlog
// and the age of its oldest unsent outcome rise, it logs a handful of
// lines, and once Kafka is back it publishes everything: backlog 0, age
// 0, published_total counting every outcome.
func TestRelayDuringKafkaOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	// The broker's port is held by the test throughout: refused while the
	// broker is down, never free for another process to take.
	k := testenv.NewDiskKafka(t)
	s := newStack(t)
	a := s.serve()
	// The projector publishes nothing (it would, on the stack's Kafka, and
	// mark the rows sent): every outcome is the relay's, after its grace.
	s.Project("IDEMGATE_PROJECTOR_PUBLISHES", "false")
	maddr := heldAddr(t)
	relay := s.Relay("KAFKA_BROKERS", k.Addr(), "IDEMGATE_METRICS_ADDR", maddr)
	murl := "http://" + maddr + "/metrics"
	relayed := func() (published, backlog, oldest float64) {
		m := scrape(t, murl, "")
		published, _ = m.sum("idemgate_relay_published_total")
		backlog, _ = m.sum("idemgate_relay_backlog")
		oldest, _ = m.sum("idemgate_relay_oldest_unsent_age_seconds")
		return
	}
	waitRelayed := func(n int, within time.Duration) {
		t.Helper()
		testenv.Eventually(t, within, "the relay caught up", func() error {
			p, b, o := relayed()
			return testenv.Check(p >= float64(n) && b == 0 && o == 0,
				"relay metrics: published %v (want >= %d), backlog %v, oldest %v (want 0, 0)", p, n, b, o)
		})
	}
	total := 0
	for i := range 10 {
		r := a.postPayment(fmt.Sprintf("before-%d", i), payment)
		a.waitCompleted(r.Header.Get("Location"), 60*time.Second)
		total++
	}
	waitRelayed(total, 30*time.Second)

	downAt := time.Now()
	k.Stop()
	const outage = 20 * time.Second
	var series []string
	maxBacklog, maxAge := 0.0, 0.0
	for i := 0; time.Since(downAt) < outage; i++ {
		r := a.postPayment(fmt.Sprintf("during-%d", i), payment)
		if r.Status != 202 {
			t.Fatalf("POST during the relay's outage: %v", r)
		}
		total++
		time.Sleep(250 * time.Millisecond) // the clients' pace through the outage, not a wait
		_, b, o := relayed()
		maxBacklog, maxAge = max(maxBacklog, b), max(maxAge, o)
		if i%8 == 0 {
			series = append(series, fmt.Sprintf("t+%.0fs backlog %v age %.1fs", time.Since(downAt).Seconds(), b, o))
		}
	}
	upAt := time.Now()
	lines := relay.Log.Between(downAt, upAt)
	k.Start()
	waitRelayed(total, 60*time.Second)
	t.Logf("relay's Kafka down %v: %s; max backlog %v, max age %.1fs; %d relay log lines meanwhile; all %d outcomes published %v after Kafka was back",
		outage, strings.Join(series, ", "), maxBacklog, maxAge, len(lines), total, ms(time.Since(upAt)))
	if maxBacklog < 10 || maxAge < 5 {
		t.Errorf("during the outage the relay's backlog peaked at %v and its oldest unsent age at %.1fs; want them to rise", maxBacklog, maxAge)
	}
	if len(lines) > 12 {
		t.Errorf("the relay logged %d lines in a %v outage, want a handful", len(lines), outage)
	}
}
