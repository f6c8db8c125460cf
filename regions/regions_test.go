package regions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/chaos/history"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/payments"
	"github.com/idemgate/idemgate/roles"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// The test's sizes: CI's. Keys per route; each key is sent by two
// clients at once, one starting in each region.
const (
	keysPerRoute = 120
	workers      = 8
	lease        = 2 * time.Second
)

// TestRegionLoss: two regions on one database, region B 30 ms from it
// and region A 1 ms. Racing clients send the same keys to both regions
// (a payment, and an order through the gateway to an upstream that
// counts its effects), now and then with another body, and retry,
// switching region when one does not answer, until the stored answer
// comes back. Mid-load A's projector dies first, so that A's Kafka holds
// commands it acknowledged and nobody applied; then region A is lost
// entirely (its roles and its broker, kill -9). Region B adopts the
// commands A had accepted or acknowledged and not completed (its
// sweeper, once their lease has run out) while A is down;
// then A comes back on the same broker data. At the end: one effect per
// key (one payment row, one order at the upstream under the claim's
// operation id), replays identical from both regions, nothing pending,
// and the history of every key, recorded across both regions,
// linearizable (chaos/history).
func TestRegionLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: two Kafka brokers and six roles")
	}
	dbURL := env.NewDatabase(t, migrations(t)...)
	db := testenv.OpenDB(t, dbURL)
	up := newUpstream(t)
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(fmt.Sprintf(`routes:
  - operation: orders.create
    path: /v1/orders
    upstream: %s/orders
    timeout: 5s
`, up.URL)), 0o644); err != nil {
		t.Fatal(err)
	}

	// The two brokers start side by side: each is a JVM start.
	var ka, kb *broker
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ka = startBroker(t, "A", 22710) }()
	go func() { defer wg.Done(); kb = startBroker(t, "B", 22720) }()
	wg.Wait()
	if ka == nil || kb == nil {
		t.FailNow()
	}
	prefix, group := "r"+testenv.Random(4), "g"+testenv.Random(4)
	a := startRegion(t, "A", dbURL, ka, time.Millisecond, prefix, group, routes)
	b := startRegion(t, "B", dbURL, kb, 30*time.Millisecond, prefix, group, routes)
	regions := []*region{a, b}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("claims %d, not completed %d, pending rows %d", testenv.Count(t, db, `SELECT count(*) FROM idempotency_claims`),
				testenv.Count(t, db, notCompleted), testenv.Count(t, db, `SELECT count(*) FROM command_pending`))
		}
	})

	rec := history.NewRecorder()
	l := &load{t: t, rec: rec, regions: regions, client: &http.Client{Timeout: 5 * time.Second},
		stored: map[string]storedAnswer{}}
	var keys []keySpec
	for i := range keysPerRoute {
		keys = append(keys,
			keySpec{path: "/v1/payments", key: fmt.Sprintf("pay-%d", i),
				body:  fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"cus_%d"}`, 1000+i, i),
				other: fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"cus_%d"}`, 2000+i, i)},
			keySpec{path: "/v1/orders", key: fmt.Sprintf("ord-%d", i),
				body:  fmt.Sprintf(`{"ref":"ord-%d","item":"book","qty":1}`, i),
				other: fmt.Sprintf(`{"ref":"ord-%d","item":"book","qty":2}`, i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	done := l.run(ctx, keys)

	// Mid-load: lose region A entirely.
	testenv.Eventually(t, 60*time.Second, "a third of the keys settled before the loss", func() error {
		return testenv.Check(l.settled.Load() >= int64(len(keys)/3), "%d of %d keys settled", l.settled.Load(), len(keys))
	})
	// The hard case first: A's projector dies, so that A's Kafka
	// acknowledges commands nobody applies; A is lost once some are there.
	a.project.Kill()
	var ackedByA []string
	testenv.Eventually(t, 60*time.Second, "commands A accepted, acknowledged by A's Kafka and not applied", func() error {
		ackedByA = ids(t, db, `SELECT c.operation_id::TEXT FROM idempotency_claims c JOIN command_pending p USING (operation_id)
		        WHERE c.accepted_region = 'a' AND p.acked_region = 'a' AND `+notCompletedWhere)
		return testenv.Check(len(ackedByA) >= 3, "%d so far", len(ackedByA))
	})
	lostAt := time.Now()
	a.kill()
	// The commands A had accepted and not completed (migration 0013's
	// accepted_region), and those its Kafka had acknowledged, whichever
	// region accepted them.
	orphans := ids(t, db, `SELECT operation_id::TEXT FROM idempotency_claims c WHERE accepted_region = 'a' AND `+notCompletedWhere)
	seen := map[string]bool{}
	for _, id := range orphans {
		seen[id] = true
	}
	for _, id := range ackedByA {
		if !seen[id] {
			orphans = append(orphans, id)
		}
	}
	t.Logf("region A lost at %d of %d keys settled; %d commands it accepted or acknowledged not completed, %d of them acknowledged by its Kafka",
		l.settled.Load(), len(keys), len(orphans), len(ackedByA))
	// B adopts them while A is down: the lease, a sweep, B's projector.
	testenv.Eventually(t, 30*time.Second, "region B completes the commands region A left", func() error {
		n := testenv.Count(t, db, `SELECT count(*) FROM idempotency_claims c WHERE c.operation_id = ANY($1::UUID[]) AND `+notCompletedWhere, orphans)
		return testenv.Check(n == 0, "%d of %d not completed with A down", n, len(orphans))
	})
	adopted := time.Since(lostAt)
	// B adopted them: the claims it emitted say so (migration 0013). Not
	// every one: a command B accepted, which A's sweeper had taken over
	// while A's projector was dead, is completed from B's own first
	// event, and its claim names A as the last to emit it.
	var how []string
	for _, id := range orphans {
		var acc, emi string
		if err := db.Pool.QueryRow(context.Background(), `SELECT COALESCE(accepted_region, ''), COALESCE(emitted_region, '')
		        FROM idempotency_claims WHERE operation_id = $1`, id).Scan(&acc, &emi); err != nil {
			t.Fatal(err)
		}
		how = append(how, acc+"->"+emi)
	}
	if !slices.ContainsFunc(how, func(s string) bool { return strings.HasSuffix(s, "->b") }) {
		t.Errorf("none of the %d commands region A left was emitted by b (accepted -> emitted: %v)", len(orphans), how)
	}
	a.restart()
	backAt := time.Since(lostAt)
	l.wait(done)
	if ctx.Err() != nil {
		t.Fatalf("the load did not settle within its time: %d of %d keys", l.settled.Load(), len(keys))
	}

	// Replays, identical from both regions.
	l.replays(keys)
	// Nothing pending.
	testenv.Eventually(t, 30*time.Second, "no command pending", func() error {
		n, p := testenv.Count(t, db, notCompleted), testenv.Count(t, db, `SELECT count(*) FROM command_pending`)
		return testenv.Check(n == 0 && p == 0, "%d claims not completed, %d pending rows", n, p)
	})
	// One effect per key: a payment row per payment claim, an order at
	// the upstream per order key, under its claim's operation id.
	claims := testenv.Claims(t, db) // key -> operation id
	if len(claims) != len(keys) {
		t.Errorf("%d claims for %d keys", len(claims), len(keys))
	}
	if n := testenv.Count(t, db, `SELECT count(*) FROM idempotency_claims c WHERE c.operation = 'payments.create'
	        AND (SELECT count(*) FROM payments p WHERE p.operation_id = c.operation_id) <> 1`); n != 0 {
		t.Errorf("%d payment claims without exactly one payment row", n)
	}
	if n, want := testenv.Count(t, db, `SELECT count(*) FROM payments`), keysPerRoute; n != want {
		t.Errorf("%d payment rows for %d payment keys", n, want)
	}
	up.mu.Lock()
	for i := range keysPerRoute {
		k := fmt.Sprintf("ord-%d", i)
		ops := up.effects[k]
		if len(ops) != 1 || !ops[claims[k]] {
			t.Errorf("key %s: the upstream's orders are under operations %v, want one, the claim's %s", k, keysOf(ops), claims[k])
		}
	}
	calls := up.calls
	up.mu.Unlock()

	// Every completed command's result event is on some region's results
	// topic, at least once (docs/MULTI-REGION.md, Results).
	published := map[string]bool{}
	for _, k := range []*broker{ka, kb} {
		c, err := kgo.NewClient(kgo.SeedBrokers(k.addr), kgo.ConsumeTopics(prefix+".results"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		k.results = c
	}
	testenv.Eventually(t, 60*time.Second, "a result event for every claim, across the two results topics", func() error {
		for _, k := range []*broker{ka, kb} {
			pctx, cancel := context.WithTimeout(context.Background(), time.Second)
			k.results.PollFetches(pctx).EachRecord(func(rec *kgo.Record) {
				if ev, err := events.Decode(rec); err == nil && ev.Type == events.TypeCommandCompleted {
					var c struct {
						OperationID string `json:"operation_id"`
					}
					if json.Unmarshal(ev.Data, &c) == nil {
						published[c.OperationID] = true
					}
				}
			})
			cancel()
		}
		missing := 0
		for _, id := range claims {
			if !published[id] {
				missing++
			}
		}
		return testenv.Check(missing == 0, "%d of %d claims without a result event", missing, len(claims))
	})

	// The history, across both regions, per key.
	entries := rec.Entries()
	v := history.Check(entries, time.Minute)
	if v.Result != porcupine.Ok {
		path := filepath.Join(t.TempDir(), "history.html")
		_ = v.WriteVisualization(path, time.Minute)
		t.Errorf("history: %v over %d keys (illegal: %v); visualisation in %s", v.Result, v.Keys, v.Illegal, path)
	}
	t.Logf("FIGURES region loss: %d keys, %d requests (%v), history %v; region A lost under load, its %d unfinished commands "+
		"completed by B %v after the loss (lease %v; accepted -> emitted: %v); A back %v after the loss; upstream calls %d for %d orders",
		len(keys), len(entries), l.kinds(), v.Result, len(orphans), adopted.Round(time.Millisecond), lease, how,
		backAt.Round(time.Millisecond), calls, keysPerRoute)
}

// notCompleted counts the claims without a recorded response.
const (
	notCompletedWhere = `NOT EXISTS (SELECT 1 FROM outbox o WHERE o.operation_id = c.operation_id)`
	notCompleted      = `SELECT count(*) FROM idempotency_claims c WHERE ` + notCompletedWhere
)

// ids runs a query of operation ids.
func ids(t *testing.T, db *sqldb.DB, query string) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func migrations(t *testing.T) []sqldb.MigrationSet {
	t.Helper()
	reg, err := idemgate.NewRegistry(payments.Module(payments.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	return roles.Migrations(reg)
}

func keysOf(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// broker is a region's Kafka broker: scripts/kafka.sh on ports of the
// test's own, in a folder of its own.
type broker struct {
	t         testing.TB
	dir, addr string
	port      int
	results   *kgo.Client // reads the region's results topic, at the end
}

// startBroker starts a broker on the first free pair of ports from base
// (base, base+1; then base+40, ...), retrying on the next pair when a
// start fails (another process on the port), and stops it when t ends.
// The ports lie below the ephemeral range (32768-60999 here, 30000-32767
// being cmd/idemgate's random draw): region A's broker starts again on
// its own ports after the loss, and a port in the ephemeral range could
// meanwhile be an outgoing connection's (a fresh-clone CI run failed so
// on 44710).
func startBroker(t *testing.T, name string, base int) *broker {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	for try := range 8 {
		port := base + 40*try
		if portOpen(port) || portOpen(port+1) {
			continue
		}
		k := &broker{t: t, dir: filepath.Join(dir, strconv.Itoa(port)), port: port}
		out, err := k.script("start")
		if err != nil {
			lastErr = err
			_, _ = k.script("stop")
			continue
		}
		k.addr = strings.TrimPrefix(strings.TrimSpace(out), "KAFKA_BROKERS=")
		t.Cleanup(func() {
			if _, err := k.script("stop"); err != nil {
				t.Logf("stop the broker of region %s: %v", name, err)
			}
		})
		return k
	}
	t.Errorf("region %s: no broker started on ports from %d: %v", name, base, lastErr)
	return nil
}

func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// script runs scripts/kafka.sh args for the broker, with the NAME=VALUE
// settings that lead args, and returns its stdout.
func (k *broker) script(args ...string) (string, error) {
	var extra []string
	for len(args) > 0 && strings.Contains(args[0], "=") {
		extra, args = append(extra, args[0]), args[1:]
	}
	arg := strings.Join(args, " ")
	cmd := exec.Command("../scripts/kafka.sh", args...)
	cmd.Env = append(os.Environ(), "KAFKA_PORT="+strconv.Itoa(k.port), "KAFKA_CONTROLLER_PORT="+strconv.Itoa(k.port+1),
		"KAFKA_RUN_DIR="+k.dir, "KAFKA_NODES=1", "KAFKA_HEAP_OPTS=-Xmx384m -Xms384m", "KAFKA_JVM_OPTS=-XX:TieredStopAtLevel=1")
	cmd.Env = append(cmd.Env, extra...)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/kafka.sh %s: %w\n%s", arg, err, errs.String())
	}
	return out.String(), nil
}

// region is serve, project and relay on a broker of their own, reaching
// the shared database through a latency proxy.
type region struct {
	t              *testing.T
	name           string
	broker         *broker
	api            *testenv.API
	project, relay *testenv.Proc
}

func startRegion(t *testing.T, name, dbURL string, k *broker, latency time.Duration, prefix, group, routes string) *region {
	t.Helper()
	f, proxied := testenv.NewDBNetFault(t, dbURL)
	f.Latency(latency)
	s := testenv.NewStack(t, proxied, []string{k.addr},
		"IDEMGATE_TOPIC_PREFIX", prefix, "IDEMGATE_GROUP", group, "IDEMGATE_REGION", strings.ToLower(name),
		"IDEMGATE_REGIONS", "a,b", "IDEMGATE_HOME_REGION", "a",
		"IDEMGATE_LEASE", lease.String(), "IDEMGATE_SWEEP_INTERVAL", "200ms", "IDEMGATE_ROUTES", routes)
	r := &region{t: t, name: name, broker: k}
	r.api = s.Serve("IDEMGATE_INSTANCE_ID", name+"-serve")
	r.project = s.Project("IDEMGATE_INSTANCE_ID", name+"-project")
	r.relay = s.Relay("IDEMGATE_INSTANCE_ID", name+"-relay")
	return r
}

// kill loses the region: kill -9 of its roles and its broker.
func (r *region) kill() {
	r.t.Helper()
	for _, p := range []*testenv.Proc{r.api.Proc, r.project, r.relay} {
		if !p.Exited() {
			p.Kill()
		}
	}
	if _, err := r.broker.script("kill", "1"); err != nil {
		r.t.Fatal(err)
	}
}

// restart brings the region back: its broker on its data, then its roles.
func (r *region) restart() {
	r.t.Helper()
	if _, err := r.broker.script("KAFKA_FRESH=0", "start"); err != nil {
		r.t.Fatal(err)
	}
	since := time.Now()
	r.api.Restart()
	r.project.Restart()
	r.relay.Restart()
	r.api.WaitReady(r.api.Base, 60*time.Second)
	for _, w := range []struct {
		p  *testenv.Proc
		re interface{ MatchString(string) bool }
	}{{r.project, testenv.ProjectorUp}, {r.relay, testenv.RelayUp}} {
		testenv.Eventually(r.t, 60*time.Second, w.p.Name+" works again", func() error {
			if w.p.Exited() {
				return fmt.Errorf("%s exited: %v", w.p.Name, w.p.State())
			}
			for _, ln := range w.p.Log.Between(since, time.Now().Add(time.Hour)) {
				if w.re.MatchString(ln.Text) {
					return nil
				}
			}
			return fmt.Errorf("not yet")
		})
	}
}

// upstream is the gateway's upstream: orders, answered once per
// Idempotency-Key (the operation id) as the demo orders service
// (examples/orders) does, counting the effects per order reference.
type upstream struct {
	*httptest.Server
	mu      sync.Mutex
	answers map[string][]byte          // by Idempotency-Key
	effects map[string]map[string]bool // ref -> the Idempotency-Keys that created an order for it
	calls   int
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{answers: map[string][]byte{}, effects: map[string]map[string]bool{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Ref string `json:"ref"`
		}
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil || body.Ref == "" {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		u.mu.Lock()
		u.calls++
		answer, ok := u.answers[key]
		if !ok {
			if u.effects[body.Ref] == nil {
				u.effects[body.Ref] = map[string]bool{}
			}
			u.effects[body.Ref][key] = true
			answer = fmt.Appendf(nil, `{"id":"order-%s","ref":%q,"state":"open"}`, key, body.Ref)
			u.answers[key] = answer
		}
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(u.Close)
	return u
}

// keySpec is a key, its body, and the other body sent now and then.
type keySpec struct{ path, key, body, other string }

// storedAnswer is the answer a key's winning body got stored.
type storedAnswer struct {
	body   string // the request body
	answer history.Answer
}

// load is the racing clients.
type load struct {
	t       *testing.T
	rec     *history.Recorder
	regions []*region
	client  *http.Client
	settled atomic.Int64
	mu      sync.Mutex
	stored  map[string]storedAnswer // by path+key
	counts  map[history.Kind]int
}

// run sends every key from two clients at once, one starting in each
// region, workers keys at a time; the channel is closed once every key
// is settled (each client got the stored answer or a 409) or ctx ends.
func (l *load) run(ctx context.Context, keys []keySpec) chan struct{} {
	done := make(chan struct{})
	next := make(chan keySpec)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 20))
			for k := range next {
				var pair sync.WaitGroup
				for c := range 2 {
					body := k.body
					if rng.IntN(10) == 0 {
						body = k.other
					}
					pair.Add(1)
					go func() {
						defer pair.Done()
						l.send(ctx, fmt.Sprintf("w%d.%d", w, c), c, k, body)
					}()
				}
				pair.Wait()
				l.settled.Add(1)
			}
		}()
	}
	go func() {
		for _, k := range keys {
			select {
			case next <- k:
			case <-ctx.Done():
			}
		}
		close(next)
		wg.Wait()
		close(done)
	}()
	return done
}

func (l *load) wait(done chan struct{}) { <-done }

// send posts body under k's key until it gets the stored answer or a
// 409; a request that gets no answer is sent again in the other region.
func (l *load) send(ctx context.Context, client string, region int, k keySpec, body string) {
	via := "submit"
	for ctx.Err() == nil {
		out, a := l.post(client, via, l.regions[region], k, body)
		via = "retry"
		switch out.Kind {
		case history.Stored:
			l.mu.Lock()
			if _, ok := l.stored[k.path+k.key]; !ok {
				l.stored[k.path+k.key] = storedAnswer{body: body, answer: a}
			}
			l.mu.Unlock()
			return
		case history.Conflict:
			return
		case history.Rejected:
			l.t.Errorf("%s %s: %d %s", k.path, k.key, a.Status, a.Body)
			return
		case history.Unknown:
			region = 1 - region // that region does not answer: the other one
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // a client's poll interval, not a wait for an event
		}
	}
}

// post sends one request to r and records it.
func (l *load) post(client, via string, r *region, k keySpec, body string) (history.Output, history.Answer) {
	in := history.Input{Key: "tenant-a/" + k.path + "/" + k.key, Fingerprint: history.Fingerprint(k.path, []byte(body))}
	call := l.rec.Begin(client+"@"+r.name, via, in)
	req, _ := http.NewRequest(http.MethodPost, r.api.Base+k.path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer key-a")
	req.Header.Set("Idempotency-Key", k.key)
	req.Header.Set("Content-Type", "application/json")
	var a history.Answer
	resp, err := l.client.Do(req)
	if err == nil {
		a.Body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		a.Status, a.ContentType, a.Location = resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Location")
		a.Replayed = resp.Header.Get("Idempotent-Replayed")
	}
	out := call.End(a, err)
	l.mu.Lock()
	if l.counts == nil {
		l.counts = map[history.Kind]int{}
	}
	l.counts[out.Kind]++
	l.mu.Unlock()
	return out, a
}

// replays sends each key's winning body to both regions and checks that
// both replay the stored answer, byte for byte.
func (l *load) replays(keys []keySpec) {
	for _, k := range keys {
		l.mu.Lock()
		s, ok := l.stored[k.path+k.key]
		l.mu.Unlock()
		if !ok {
			l.t.Errorf("%s %s: no client got the stored answer", k.path, k.key)
			continue
		}
		for _, r := range l.regions {
			out, a := l.post("replayer", "replay", r, k, s.body)
			if out.Kind != history.Stored || a.Status != s.answer.Status || a.ContentType != s.answer.ContentType ||
				a.Location != s.answer.Location || !bytes.Equal(a.Body, s.answer.Body) {
				l.t.Errorf("%s %s: region %s replays %d %q %s, the stored answer is %d %q %s", k.path, k.key, r.name,
					a.Status, a.Location, a.Body, s.answer.Status, s.answer.Location, s.answer.Body)
			}
		}
	}
}

func (l *load) kinds() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, n := range l.counts {
		out[k.String()] = n
	}
	return out
}
