package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/idemgate/idemgate/command"
	"github.com/idemgate/idemgate/pgserver"
	"github.com/idemgate/idemgate/roles"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// answerBound is how long a request may take while the database fails
// over: the API's deadline on its database work, plus what the rest of
// a request costs (nothing near half a second).
const answerBound = command.DefaultDBTimeout + 500*time.Millisecond

// pairStack is serve, project and relay (in this process, as startStack
// runs them) on a PostgreSQL primary with a synchronous standby of the
// test's own (pgserver.StartPair), through the URL that names both
// (target_session_attrs=read-write), and on a kfake cluster of the
// test's own; exited receives a role's end, which must not come before
// the test's.
type pairStack struct {
	*stack
	pair *pgserver.Pair
}

func startPairStack(t *testing.T, roleNames ...string) *pairStack {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts a PostgreSQL pair")
	}
	pair := testenv.StartPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg, err := registry(roles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(ctx, pair.URL(), sqldb.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx, roles.Migrations(reg)...); err != nil {
		t.Fatal(err)
	}
	db.Close()
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)

	s := &pairStack{stack: newStack(t, pair.URL(), kafka.ListenAddrs()), pair: pair}
	s.exited = make(chan string, len(roleNames))
	s.start(roleNames...)
	return s
}

// noneExited fails t if a role has ended.
func (s *pairStack) noneExited() {
	s.t.Helper()
	select {
	case msg := <-s.exited:
		s.t.Fatalf("a role did not ride out the failover: %s", msg)
	default:
	}
}

// answer is one request's outcome, on one clock.
type answer struct {
	key        string
	start, end time.Time
	status     int
	retryAfter string
	err        error
}

// load posts payments from a few clients, each a new key once the last
// is acknowledged and the same key again after a 503 (as a client that
// keeps its key does), and records every answer.
type load struct {
	s       *pairStack
	client  *http.Client
	mu      sync.Mutex
	answers []answer
	acked   map[string]time.Time // key: when its 202 came
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(s *pairStack, clients int) *load {
	l := &load{s: s, client: &http.Client{Timeout: 30 * time.Second}, acked: map[string]time.Time{}, stop: make(chan struct{})}
	for c := range clients {
		l.wg.Add(1)
		go l.run(c)
	}
	return l
}

func (l *load) run(c int) {
	defer l.wg.Done()
	// Paced, not a spin: a 503 of a server that cannot reach its
	// database comes back at once.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	n := 0
	key := fmt.Sprintf("fo-%d-%d", c, n)
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		a := l.post(key)
		l.mu.Lock()
		l.answers = append(l.answers, a)
		if a.status == http.StatusAccepted {
			l.acked[key] = a.end
		}
		l.mu.Unlock()
		if a.status == http.StatusAccepted {
			n++
			key = fmt.Sprintf("fo-%d-%d", c, n)
		}
	}
}

func (l *load) post(key string) answer {
	a := answer{key: key, start: time.Now()}
	req, err := http.NewRequest("POST", l.s.base+"/v1/payments", strings.NewReader(payment))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Authorization", "Bearer key-a")
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	res, err := l.client.Do(req)
	a.end = time.Now()
	if err != nil {
		a.err = err
		return a
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	a.status, a.retryAfter = res.StatusCode, res.Header.Get("Retry-After")
	return a
}

func (l *load) finish() {
	close(l.stop)
	l.wg.Wait()
}

// ackedBy is the keys acknowledged by t.
func (l *load) ackedBy(t time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keys []string
	for k, at := range l.acked {
		if !at.After(t) {
			keys = append(keys, k)
		}
	}
	return keys
}

// acksAfter counts the 202s of requests sent after t.
func (l *load) acksAfter(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.answers {
		if a.status == http.StatusAccepted && a.start.After(t) {
			n++
		}
	}
	return n
}

// check fails t for any answer that is not a 202, or a 503 with
// Retry-After, within answerBound; it returns the longest time between
// two 202s, the slowest answer, and how many answers were 503s.
func (l *load) check(t *testing.T) (gap, slowest time.Duration, unavailable int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var acks []time.Time
	for _, a := range l.answers {
		took := a.end.Sub(a.start)
		slowest = max(slowest, took)
		switch {
		case a.err != nil:
			t.Errorf("%s at %s: %v", a.key, a.start.Format(time.StampMilli), a.err)
		case a.status == http.StatusAccepted:
			acks = append(acks, a.end)
		case a.status == http.StatusServiceUnavailable && a.retryAfter != "":
			unavailable++
		default:
			t.Errorf("%s at %s: %d (Retry-After %q); want 202, or 503 with Retry-After", a.key, a.start.Format(time.StampMilli), a.status, a.retryAfter)
		}
		if took > answerBound {
			t.Errorf("%s at %s: answered %d in %v, beyond %v", a.key, a.start.Format(time.StampMilli), a.status, took, answerBound)
		}
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(acks); i++ {
		gap = max(gap, acks[i].Sub(acks[i-1]))
	}
	return gap, slowest, unavailable
}

// TestPrimaryFailover: serve, project and relay under load ride out the
// database primary's kill -9 and the standby's promotion without exiting.
// Meanwhile every request is answered 202, or 503 with Retry-After,
// within the API's deadline; every claim acknowledged before the kill is
// on the promoted node (the synchronous standby had it), and every
// acknowledged command completes; 202s come back. Then the old primary
// rejoins as the synchronous standby, and claims are on both again.
func TestPrimaryFailover(t *testing.T) {
	s := startPairStack(t, "serve", "project", "relay")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := startLoad(s, 4)
	stopped := false
	defer func() {
		if !stopped {
			l.finish()
		}
	}()
	testenv.Eventually(t, 60*time.Second, "claims are acknowledged", func() error {
		n := len(l.ackedBy(time.Now()))
		return testenv.Check(n >= 20, "%d acknowledged", n)
	})

	old := s.pair.Primary()
	if err := s.pair.KillPrimary(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now() // the primary and its backends are gone
	before := l.ackedBy(killed)
	if err := s.pair.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	testenv.Eventually(t, 60*time.Second, "claims are acknowledged again", func() error {
		n := l.acksAfter(promoted)
		return testenv.Check(n >= 20, "%d acknowledged since the promotion", n)
	})
	s.noneExited()

	if err := s.pair.Rejoin(ctx); err != nil {
		t.Fatal(err)
	}
	rejoined := time.Now()
	if s.pair.Standby() != old {
		t.Fatalf("after Rejoin the standby is %v, want the old primary", s.pair.Standby())
	}
	testenv.Eventually(t, 60*time.Second, "claims are acknowledged with the rejoined standby", func() error {
		n := l.acksAfter(rejoined)
		return testenv.Check(n >= 20, "%d acknowledged since the rejoin", n)
	})
	l.finish()
	stopped = true
	s.noneExited()

	gap, slowest, unavailable := l.check(t)
	missing := 0
	for _, k := range before {
		if s.count(`SELECT count(*) FROM idempotency_claims WHERE idem_key = $1`, k) != 1 {
			t.Errorf("claim %s, acknowledged before the kill, is not on the promoted node", k)
			missing++
		}
	}
	all := l.ackedBy(time.Now())
	testenv.Eventually(t, 60*time.Second, "every acknowledged command completes", func() error {
		n := s.count(`SELECT count(*) FROM idempotency_claims JOIN outbox USING (operation_id) WHERE idem_key = ANY($1)`, all)
		return testenv.Check(n == len(all), "%d of %d completed", n, len(all))
	})
	// The rejoined node streams: what the new primary committed last is
	// on it (synchronous commit waited for it).
	var onStandby int
	testenv.Eventually(t, 30*time.Second, "the rejoined standby has every claim", func() error {
		n, err := countOn(ctx, old.URL(), `SELECT count(*) FROM idempotency_claims WHERE idem_key = ANY($1)`, all)
		onStandby = n
		return testenv.Check(err == nil && n == len(all), "%d of %d (%v)", n, len(all), err)
	})
	t.Logf("failover: %d requests, %d claims acknowledged (%d before the kill, %d missing after promotion), %d answered 503 + Retry-After, slowest answer %v; "+
		"longest time without a 202: %v (promotion took %v); rejoined standby has %d claims",
		len(l.answers), len(all), len(before), missing, unavailable, slowest.Round(time.Millisecond), gap.Round(time.Millisecond),
		promoted.Sub(killed).Round(time.Millisecond), onStandby)
}

// countOn runs a counting query on one server, a standby included (which
// sqldb's pool refuses, and which takes no SERIALIZABLE transaction).
func countOn(ctx context.Context, url, query string, args ...any) (int, error) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var n int
	err = tx.QueryRow(ctx, query, args...).Scan(&n)
	return n, err
}

// TestStandbyDown: with the synchronous standby down, a claim's COMMIT
// waits for it, and the client gets a 503 with Retry-After at the API's
// deadline, not a hang. At that deadline pgx cancels the statement, which
// ends the wait: the claim is then committed on the primary alone, and
// the same request sent again gets its command's 202 at once (it writes
// nothing, so it waits for nothing). Each new key meets the same 503
// first. The operator restores service by naming no synchronous standby
// (ALTER SYSTEM ... synchronous_standby_names = ”, accepting one copy):
// new claims get 202 at once.
func TestStandbyDown(t *testing.T) {
	s := startPairStack(t, "serve", "project")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := &load{s: s, client: &http.Client{Timeout: 30 * time.Second}}
	if a := l.post("warm"); a.status != http.StatusAccepted {
		t.Fatalf("warm: %d %v", a.status, a.err)
	}
	primary := s.pair.Primary()
	if err := s.pair.Standby().Stop(ctx); err != nil {
		t.Fatal(err)
	}
	unavailable := func(a answer) {
		t.Helper()
		took := a.end.Sub(a.start)
		if a.err != nil || a.status != http.StatusServiceUnavailable || a.retryAfter == "" || took < command.DefaultDBTimeout || took > answerBound {
			t.Fatalf("%s, standby down: %d (Retry-After %q, %v) in %v; want 503 with Retry-After at the deadline (%v, within %v)",
				a.key, a.status, a.retryAfter, a.err, took, command.DefaultDBTimeout, answerBound)
		}
	}
	accepted := func(a answer) {
		t.Helper()
		if took := a.end.Sub(a.start); a.err != nil || a.status != http.StatusAccepted || took > answerBound {
			t.Fatalf("%s: %d (%v) in %v; want 202", a.key, a.status, a.err, took)
		}
	}
	blocked := l.post("blocked")
	unavailable(blocked)
	// pgx sends the cancel as it closes the connection, on its own time.
	testenv.Eventually(t, 10*time.Second, "the claim answered 503 is committed on the primary alone", func() error {
		n, err := countOn(ctx, primary.URL(), `SELECT count(*) FROM idempotency_claims WHERE idem_key = 'blocked'`)
		return testenv.Check(err == nil && n == 1, "%d rows, %v", n, err)
	})
	again := l.post("blocked")
	accepted(again)
	unavailable(l.post("other"))

	for _, sql := range []string{"ALTER SYSTEM SET synchronous_standby_names = ''", "SELECT pg_reload_conf()"} {
		c, err := pgx.Connect(ctx, primary.URL())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		c.Close(ctx)
	}
	fresh := l.post("after-the-operator")
	accepted(fresh)
	accepted(l.post("other"))
	t.Logf("standby down: a new key's 503 in %v, the same request again 202 in %v; after the operator's command a new key's 202 in %v",
		blocked.end.Sub(blocked.start).Round(time.Millisecond), again.end.Sub(again.start).Round(time.Millisecond), fresh.end.Sub(fresh.start).Round(time.Millisecond))
}
