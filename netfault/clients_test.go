package netfault

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/payments"
	"github.com/idemgate/idemgate/roles"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// deadline is the API's bound on a request's database work
// (IDEMGATE_DB_TIMEOUT's default); slack covers the HTTP round trip on a
// loaded machine.
const (
	deadline = 2 * time.Second
	slack    = time.Second
)

// body is the payment a key's command carries; other is another body
// under the same key (a 409).
func body(key string) string {
	return `{"amount":1000,"currency":"EUR","customer":"cus_` + key + `"}`
}

func other(key string) string {
	return `{"amount":2000,"currency":"EUR","customer":"cus_` + key + `"}`
}

// migrations is the schema of the binary's registry (the payments).
func migrations(t *testing.T) []sqldb.MigrationSet {
	t.Helper()
	reg, err := idemgate.NewRegistry(payments.Module(payments.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	return roles.Migrations(reg)
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// ledger is what the clients of one API were told, key by key, checked
// as it comes: a 202 names one operation per key, a 503 carries
// Retry-After and comes within the deadline, a stored answer is the
// same bytes every time.
type ledger struct {
	t      *testing.T
	base   string
	prefix string // of its keys

	mu      sync.Mutex
	keys    []string
	op      map[string]string // key -> operation id, once a 202 or a replay named it
	stored  map[string]string // key -> the stored answer, once replayed
	unknown map[string]bool   // keys last answered 503: they may or may not be claimed
	counts  map[int]int       // answers by status
	last202 time.Time
	maxGap  time.Duration // the longest time without a 202 for a new command
	slowest time.Duration
}

func newLedger(t *testing.T, base, prefix string) *ledger {
	return &ledger{t: t, base: base, prefix: prefix, op: map[string]string{}, stored: map[string]string{},
		unknown: map[string]bool{}, counts: map[int]int{}}
}

// post sends key's command once and checks the answer against the
// promises; it returns the answer.
func (l *ledger) post(key string) testenv.Reply {
	r := testenv.Do("POST", l.base+"/v1/payments", body(key), "Authorization", "Bearer key-a",
		"Idempotency-Key", key, "Content-Type", "application/json")
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.op[key]; !ok && !l.unknown[key] {
		l.keys = append(l.keys, key)
	}
	l.slowest = max(l.slowest, r.Took)
	if r.Err != nil {
		l.t.Errorf("POST %s: %v (want an answer within the deadline)", key, r)
		return r
	}
	l.counts[r.Status]++
	if r.Took > deadline+slack {
		l.t.Errorf("POST %s answered %d after %v, want within %v", key, r.Status, ms(r.Took), deadline+slack)
	}
	switch {
	case r.Status == http.StatusAccepted:
		if now := time.Now(); !l.last202.IsZero() {
			l.maxGap = max(l.maxGap, now.Sub(l.last202))
		}
		l.last202 = time.Now()
		op := strings.TrimPrefix(r.Header.Get("Location"), "/v1/operations/")
		if prev, ok := l.op[key]; ok && prev != op {
			l.t.Errorf("POST %s: 202 for operation %s, earlier %s", key, op, prev)
		}
		if _, done := l.stored[key]; done {
			l.t.Errorf("POST %s: 202 after its stored answer was replayed", key)
		}
		l.op[key] = op
		delete(l.unknown, key)
	case r.Status == http.StatusServiceUnavailable:
		if r.Header.Get("Retry-After") == "" {
			l.t.Errorf("POST %s: 503 without Retry-After", key)
		}
		if _, ok := l.op[key]; !ok {
			l.unknown[key] = true
		}
	case r.Header.Get("Idempotent-Replayed") == "true":
		if prev, ok := l.stored[key]; ok && prev != string(r.Body) {
			l.t.Errorf("POST %s: replayed %s, earlier %s", key, r.Body, prev)
		}
		l.stored[key] = string(r.Body)
		delete(l.unknown, key)
		if _, ok := l.op[key]; !ok {
			l.op[key] = "" // claimed by an attempt whose answer was a 503
		}
	default:
		l.t.Errorf("POST %s: %v", key, r)
	}
	return r
}

// conflict sends another body under key: 409 when the key is claimed,
// or 503 within the deadline.
func (l *ledger) conflict(key string) {
	r := testenv.Do("POST", l.base+"/v1/payments", other(key), "Authorization", "Bearer key-a",
		"Idempotency-Key", key, "Content-Type", "application/json")
	if r.Err != nil || r.Status != http.StatusConflict && r.Status != http.StatusServiceUnavailable || r.Took > deadline+slack {
		l.t.Errorf("POST %s with another body: %v, want 409 (or 503 within %v)", key, r, deadline+slack)
	}
}

// settle retries every key until its stored answer comes back (twice,
// the same bytes), as a client that keeps its key does; it fails the
// test if one does not within the time given.
func (l *ledger) settle(within time.Duration) {
	l.t.Helper()
	defer func() {
		if !l.t.Failed() {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, key := range l.keys {
			if _, done := l.stored[key]; !done {
				l.t.Logf("unsettled %s: operation %q; GET %v", key, l.op[key], testenv.Do("GET", l.base+"/v1/operations/"+l.op[key], "", "Authorization", "Bearer key-a"))
			}
		}
	}()
	l.mu.Lock()
	keys := append([]string(nil), l.keys...)
	l.mu.Unlock()
	testenv.Eventually(l.t, within, "every command's stored answer is replayed", func() error {
		var waiting []string
		for _, key := range keys {
			l.mu.Lock()
			_, done := l.stored[key]
			l.mu.Unlock()
			if done {
				continue
			}
			if r := l.post(key); r.Header.Get("Idempotent-Replayed") != "true" || r.Status == http.StatusAccepted {
				waiting = append(waiting, fmt.Sprintf("%s: %v", key, r))
				continue
			}
			l.post(key) // the same bytes again (checked)
		}
		return testenv.Check(len(waiting) == 0, "%d commands not completed, the first %s", len(waiting), strings.Join(waiting[:min(len(waiting), 1)], ""))
	})
}

// claimed reports whether key got a 202 or a stored answer.
func (l *ledger) claimed(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.op[key]
	return ok
}

// acked is the number of keys that got a 202 or a stored answer.
func (l *ledger) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.op)
}

// check compares the database with the ledger, once settled: one claim
// and one payment per key, none other.
func (l *ledger) check(s *testenv.Stack) (lost, doubled int) {
	l.t.Helper()
	l.mu.Lock()
	keys := len(l.keys)
	ops := map[string]string{}
	for k, op := range l.op {
		if op != "" {
			ops[k] = op
		}
	}
	l.mu.Unlock()
	like := l.prefix + "%"
	claims := s.Count(`SELECT count(*) FROM idempotency_claims WHERE idem_key LIKE $1`, like)
	pays := s.Count(`SELECT count(*) FROM payments p JOIN idempotency_claims c USING (operation_id) WHERE c.idem_key LIKE $1`, like)
	distinct := s.Count(`SELECT count(DISTINCT p.operation_id) FROM payments p JOIN idempotency_claims c USING (operation_id)
		WHERE c.idem_key LIKE $1`, like)
	for key, op := range ops {
		if s.Count(`SELECT count(*) FROM idempotency_claims WHERE idem_key = $1 AND operation_id = $2`, key, op) != 1 {
			l.t.Errorf("%s: 202 for operation %s, which holds no claim", key, op)
		}
		if n := s.Count(`SELECT count(*) FROM payments WHERE operation_id = $1`, op); n != 1 {
			l.t.Errorf("%s: operation %s applied %d times, want once", key, op, n)
		}
	}
	lost, doubled = max(0, keys-distinct), pays-distinct
	if claims != keys || pays != keys || distinct != keys {
		l.t.Errorf("%d keys sent: %d claims, %d payments of %d operations; want one of each per key", keys, claims, pays, distinct)
	}
	return lost, doubled
}

// load sends new commands from workers until stop is called, one at a
// time each, at the clients' own pace (each waits for its answer), and
// now and then another body under a key already sent; a key answered 503
// is left to settle. stop returns once every worker has had its answer.
func (l *ledger) load(workers int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				key := fmt.Sprintf("%sw%d-%d", l.prefix, w, i)
				l.post(key)
				if earlier := fmt.Sprintf("%sw%d-%d", l.prefix, w, i-5); i%10 == 9 && l.claimed(earlier) {
					l.conflict(earlier)
				}
				select { // each client's pace: a command every 25 ms at most
				case <-done:
					return
				case <-time.After(25 * time.Millisecond):
				}
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// loadBeforeFault is load, once 20 commands are accepted: the load is
// under way when the fault comes.
func (l *ledger) loadBeforeFault(workers int) (stop func()) {
	l.t.Helper()
	stop = l.load(workers)
	testenv.Eventually(l.t, 30*time.Second, "commands accepted before the fault", func() error {
		return testenv.Check(l.acked() >= 20, "%d accepted", l.acked())
	})
	return stop
}

// window counts the answers by status from now until the returned
// function is called.
func (l *ledger) window() func() map[int]int {
	l.mu.Lock()
	before := maps.Clone(l.counts)
	l.mu.Unlock()
	return func() map[int]int {
		l.mu.Lock()
		defer l.mu.Unlock()
		out := map[int]int{}
		for k, v := range l.counts {
			if v-before[k] > 0 {
				out[k] = v - before[k]
			}
		}
		return out
	}
}

// diagnose logs, for a failed test, the commands not completed (with
// their pending rows) and the roles' log lines other than requests.
func diagnose(t *testing.T, s *testenv.Stack, procs ...*testenv.Proc) {
	rows, err := s.DB.Pool.Query(context.Background(), `SELECT c.idem_key, c.operation_id::text, c.emit_attempts,
		p.operation_id IS NOT NULL, coalesce(p.lease_until::text, '')
		FROM idempotency_claims c LEFT JOIN outbox o ON o.operation_id = c.operation_id
		LEFT JOIN command_pending p ON p.operation_id = c.operation_id WHERE o.operation_id IS NULL`)
	if err != nil {
		t.Logf("diagnose: %v", err)
		return
	}
	for rows.Next() {
		var key, op, lease string
		var attempts int
		var pending bool
		if err := rows.Scan(&key, &op, &attempts, &pending, &lease); err != nil {
			t.Logf("diagnose: %v", err)
			break
		}
		t.Logf("not completed: %s operation %s emit_attempts %d pending row %v lease %s", key, op, attempts, pending, lease)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Logf("diagnose: %v", err)
	}
	for _, p := range procs {
		var b strings.Builder
		for _, ln := range p.Log.Between(time.Time{}, time.Now().Add(time.Hour)) {
			if !strings.Contains(ln.Text, "msg=request ") {
				b.WriteString(ln.At.Format("15:04:05.000 ") + ln.Text + "\n")
			}
		}
		t.Logf("--- %s, lines other than requests ---\n%s", p.Name, b.String())
	}
}
