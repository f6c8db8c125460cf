// Package chaos is idemgate's chaos test (issues 4 and 8): the serve,
// project and relay roles run as separate processes on a real Kafka broker
// and a real PostgreSQL server, with the gateway's routes in front of the
// demo orders service (examples/orders, a process of its own), while
// concurrent clients drive payments, refunds and orders with retries;
// processes are killed with -9 (some projectors while their call to the
// orders service is in flight), die at every named fault point, the broker
// restarts, PostgreSQL crashes and the orders service crashes. Then the
// database, the topics and the orders service are checked against the
// invariants of docs/ARCHITECTURE.md (I1-I4): among them, one effect at
// the orders service per accepted order, and none other.
//
//	go test -count=1 -v -run 'TestChaos$' ./chaos/   # CI size (default)
//	make chaos                                         # full size
//
// TestChaosCluster (cluster_test.go, make chaos-cluster) is the same run
// on a three-node Kafka cluster and a PostgreSQL primary with a
// synchronous standby, behind toxiproxies.
//
// Settings (environment): CHAOS_COMMANDS (300), CHAOS_KILLS (6),
// CHAOS_CLIENTS (16), CHAOS_DURATION (60s: how long the load lasts),
// CHAOS_DRAIN (3m: how long every command may take to complete once the
// chaos stops), CHAOS_SEED (random), CHAOS_BIN (test this idemgate binary
// instead of building ../cmd/idemgate), CHAOS_ORDERS_BIN (likewise, for
// ../examples/orders), CHAOS_KAFKA_PORT (29092, and the next
// port for its controller), CHAOS_PG_PORT (25432), CHAOS_MUTANT (a
// mutation point for serve, such as mutant.api.replay-other-answer=0.05:
// the run must then fail). See RELIABILITY.md.
package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idemgate/idemgate/chaos/history"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/testenv"
)

type settings struct {
	commands, kills, clients int
	duration, drain          time.Duration
	acceptWithin             time.Duration // a command must be accepted within this
	seed                     uint64
	kafkaPort, pgPort        int
	mutant                   string // CHAOS_MUTANT: a mutation point for serve, point=odds (fault.Mutations)
}

// loadSettings reads the run's settings: the single-node run's backend
// ports are CHAOS_KAFKA_PORT and CHAOS_PG_PORT, the cluster run's
// CHAOS_CLUSTER_KAFKA_PORT and CHAOS_CLUSTER_PG_PORT (cluster_test.go),
// whose load also lasts longer by default (its faults take longer).
func loadSettings(t *testing.T, cluster bool) settings {
	kafkaVar, kafkaDef, pgVar, pgDef, duration := "CHAOS_KAFKA_PORT", 29092, "CHAOS_PG_PORT", 25432, 60*time.Second
	if cluster {
		kafkaVar, kafkaDef, pgVar, pgDef, duration = "CHAOS_CLUSTER_KAFKA_PORT", 27092, "CHAOS_CLUSTER_PG_PORT", 26432, 90*time.Second
	}
	s := settings{
		commands:  envInt(t, "CHAOS_COMMANDS", 300),
		kills:     envInt(t, "CHAOS_KILLS", 6),
		clients:   envInt(t, "CHAOS_CLIENTS", 16),
		duration:  envDur(t, "CHAOS_DURATION", duration),
		drain:     envDur(t, "CHAOS_DRAIN", 3*time.Minute),
		kafkaPort: envInt(t, kafkaVar, kafkaDef),
		pgPort:    envInt(t, pgVar, pgDef),
		seed:      mrand.Uint64(),
		mutant:    os.Getenv("CHAOS_MUTANT"),
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		s.seed = n
	}
	s.acceptWithin = 2 * time.Minute
	return s
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q is not a positive number", name, v)
	}
	return n
}

func envDur(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q is not a duration", name, v)
	}
	return d
}

// run is one chaos run.
type run struct {
	t     *testing.T
	cfg   settings
	start time.Time
	runID string

	root, logDir    string
	bin, ordersBin  string
	kafkaDir, pgDir string
	dbURL, brokers  string
	prefix, group   string
	db              *pgxpool.Pool
	client          *http.Client
	procs           []*proc
	serves          []*proc
	up              *upstream // the gateway's upstream (orders service)
	routesFile      string

	// faultMode: 0 = load odds, 1 = top-up (only the points that have not
	// fired yet), 2 = off.
	faultMode atomic.Int32
	odds      map[string]float64
	topUp     map[string]bool

	mu            sync.Mutex
	cmds          []*command
	paid          []paymentRef // payments seen to succeed
	acceptedPays  []paymentRef // payments accepted that will succeed
	statuses      map[int]int
	failures      map[string][]string
	kills         map[string]int
	slowStops     map[string]int
	kafkaOut      outage                              // the broker's restarts and downtime
	pgOut         outage                              // PostgreSQL's
	upOut         outage                              // the orders service's
	upIsDown      atomic.Bool                         // the orders service is down: every new command is an order
	midCall       struct{ planned, done, missed int } // kills of a projector while its call is in flight
	outagesNow    atomic.Int32                        // backend outages under way (the broker, PostgreSQL, the orders service)
	orders        []string                            // orders seen created: cancels target them
	topUpCommands int
	injected      int
	poison        poisonState // the poison record and the mid-batch stops
	phases        []string
	acks          []time.Time       // when each 202 came back (the cluster run's time without a 202)
	hist          *history.Recorder // every POST under a key, checked with porcupine (history_test.go)
	cl            *clusterRun       // the cluster run's backends and faults (cluster_test.go); nil on the single nodes
	followers     sync.WaitGroup    // the clients that POST a command until its stored answer (follow)

	stats struct {
		retries, respelled, duplicates, transportErrors atomic.Int64
		accepted202, storedDirect, unexpected500        atomic.Int64
		lateRetries, conflicts                          atomic.Int64
		raced, contested, followed, followTimeouts      atomic.Int64
	}
}

func (r *run) since() float64 { return time.Since(r.start).Seconds() }

func (r *run) logf(format string, args ...any) {
	r.t.Logf("t+%5.1fs "+format, append([]any{r.since()}, args...)...)
}

// fail records a broken expectation under a category; check reports them
// all at the end, with counts and examples.
func (r *run) fail(category, format string, args ...any) {
	r.mu.Lock()
	r.failures[category] = append(r.failures[category], fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// phase runs one phase of the run and records how long it took.
func (r *run) phase(name string, f func()) {
	start := time.Now()
	f()
	r.mu.Lock()
	r.phases = append(r.phases, fmt.Sprintf("%s %v", name, time.Since(start).Round(100*time.Millisecond)))
	r.mu.Unlock()
}

// Fault points by role, and the odds each is given during the load.
var pointsOf = map[string][]string{
	"serve":   {fault.AfterClaimCommit, fault.AfterKafkaAck},
	"project": {fault.InProjectorTx, fault.AfterProjectorTx, fault.AfterUpstreamCall},
	"relay":   {fault.AfterRelayPublish},
}

// faultSpec is the IDEMGATE_FAULTS of a process of kind started now.
func (r *run) faultSpec(kind string) string {
	var parts []string
	switch r.faultMode.Load() {
	case 0:
		for _, p := range pointsOf[kind] {
			parts = append(parts, fmt.Sprintf("%s=%.5f", p, r.odds[p]))
		}
	case 1:
		// Only the points that have still not fired: a process that
		// died at its point restarts without faults.
		hits := r.faultHits()
		for _, p := range pointsOf[kind] {
			if r.topUp[p] && hits[p] == 0 {
				parts = append(parts, fmt.Sprintf("%s=%g", p, topUpOdds[p]))
			}
		}
	}
	// A mutation point (CHAOS_MUTANT) stays on through the whole run, so
	// that the checks meet what it breaks.
	if kind == "serve" && r.cfg.mutant != "" {
		parts = append(parts, r.cfg.mutant)
	}
	return strings.Join(parts, ",")
}

// topUpOdds are the odds of a point that the load did not fire.
var topUpOdds = map[string]float64{
	fault.AfterClaimCommit:  0.1,
	fault.AfterKafkaAck:     0.1,
	fault.InProjectorTx:     0.05,
	fault.AfterProjectorTx:  0.05,
	fault.AfterUpstreamCall: 0.5,
	fault.AfterRelayPublish: 0.5,
}

// chooseOdds aims at about `want` deaths at each point over the load:
// every point is passed once or more per command, except the relay's,
// which is passed once per batch (a batch every 200 ms at most), and the
// projector's after-commit point, passed by every delivery of an event
// (the test delivers each event about three times), where in-tx is passed
// by first deliveries only. Every projector death stalls the consumer
// group (see RELIABILITY.md), so only part of the commands are projected
// while the load lasts: the projectors' points get twice the odds. Only
// the commands applied in the database (all but orderShare) pass in-tx
// and after-commit; the orders pass after-upstream-call instead, once per
// call attempt, that is about once per order plus the retries: it aims at
// 8 deaths.
func chooseOdds(commands int, load time.Duration) map[string]float64 {
	const want = 4.0
	n := float64(commands)
	inDB := n * (1 - orderShare)
	batches := min(n, load.Seconds()/0.2) / 2
	odds := map[string]float64{
		fault.AfterClaimCommit:  want / n,
		fault.AfterKafkaAck:     want / n,
		fault.InProjectorTx:     2 * want / inDB,
		fault.AfterProjectorTx:  2 * want / (3 * inDB),
		fault.AfterUpstreamCall: 2 * want / (orderShare * n),
		fault.AfterRelayPublish: max(want/max(batches, 10), 0.08), // a relay death costs little
	}
	for p, o := range odds {
		odds[p] = min(o, 0.2)
	}
	// The calls of a small run that meet the upstream's outage pass
	// after-upstream-call many times: at 0.13, a CI-size run died there
	// 11 to 21 times.
	odds[fault.AfterUpstreamCall] = min(odds[fault.AfterUpstreamCall], 0.08)
	return odds
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos test runs for minutes; skipped with -short")
	}
	newRun(t, false).execute()
}

// newRun prepares a chaos run (cluster: on the clusters, cluster_test.go).
func newRun(t *testing.T, cluster bool) *run {
	for _, tool := range []string{"java", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the chaos test needs %s on PATH (it runs a real Kafka broker): %v", tool, err)
		}
	}
	cfg := loadSettings(t, cluster)
	r := &run{
		t: t, cfg: cfg, start: time.Now(), runID: randomHex(3),
		statuses: map[int]int{}, failures: map[string][]string{}, kills: map[string]int{}, slowStops: map[string]int{},
		odds: chooseOdds(cfg.commands, cfg.duration), topUp: map[string]bool{},
		hist: history.NewRecorder(),
	}
	if cluster {
		r.cl = &clusterRun{}
	}
	r.prefix = "chaos" + r.runID
	r.group = "chaos-" + r.runID + "-projector"
	// Folders named by port: runs on other ports never share them, and a
	// run on the same ports stops what an earlier one left running.
	r.kafkaDir = fmt.Sprintf("/tmp/idemgate-chaos-kafka-%d", cfg.kafkaPort)
	r.pgDir = fmt.Sprintf("/tmp/idemgate-chaos-pg-%d", cfg.pgPort)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	r.root = root
	r.logDir, err = os.MkdirTemp("", "idemgate-chaos-logs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs kept in %s", r.logDir)
			return
		}
		_ = os.RemoveAll(r.logDir)
	})
	r.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}}
	return r
}

// execute runs the chaos: backends, processes, load with its faults,
// top-up, drain, checks.
func (r *run) execute() {
	cfg := r.cfg
	mode := "single nodes"
	if r.cl != nil {
		mode = "clusters (three Kafka nodes, a PostgreSQL primary and its synchronous standby, toxiproxies)"
	}
	r.logf("chaos run %s on the %s: %d commands from %d clients over %v, %d kills, seed %d; logs in %s",
		r.runID, mode, cfg.commands, cfg.clients, cfg.duration, cfg.kills, cfg.seed, r.logDir)
	r.logf("fault odds during the load: %s", r.faultSpec("serve")+","+r.faultSpec("project")+","+r.faultSpec("relay"))

	r.phase("setup", func() {
		r.build()
		if r.cl != nil {
			r.startClusterBackends()
		} else {
			r.startBackends()
		}
		r.migrate()
		r.startUpstream()
		r.startProcesses()
	})
	r.phase("load", r.chaosLoad)
	r.phase("fault top-up", r.topUpFaults)
	r.phase("drain", r.drain)
	var sum tally
	r.phase("checks", func() {
		sum = r.check()
		if r.cl != nil {
			r.checkCluster()
		}
	})
	r.summary(sum)
	if r.cl != nil {
		r.clusterFigures(sum)
	}
	r.report()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// build compiles the binary under test (CHAOS_BIN: use that one).
// The demo orders service, the gateway's upstream, is built with it, in
// the same go build (CHAOS_ORDERS_BIN: use that one).
func (r *run) build() {
	dir := r.t.TempDir()
	var pkgs []string
	if r.bin = os.Getenv("CHAOS_BIN"); r.bin != "" {
		r.logf("binary under test: %s (CHAOS_BIN)", r.bin)
	} else {
		r.bin = filepath.Join(dir, "idemgate")
		pkgs = append(pkgs, "./cmd/idemgate")
	}
	if r.ordersBin = os.Getenv("CHAOS_ORDERS_BIN"); r.ordersBin != "" {
		r.logf("orders service under test: %s (CHAOS_ORDERS_BIN)", r.ordersBin)
	} else {
		r.ordersBin = filepath.Join(dir, "orders")
		pkgs = append(pkgs, "./examples/orders")
	}
	if len(pkgs) == 0 {
		return
	}
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = r.root
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
}

func (r *run) migrate() {
	cmd := exec.Command(r.bin, "migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+r.dbURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("idemgate migrate: %v\n%s", err, out)
	}
	r.logf("%s", strings.TrimSpace(string(out)))
	r.db, err = pgxpool.New(context.Background(), r.dbURL)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(r.db.Close)
}

// startProcesses starts 2 x serve, 2 x project and 1 x relay under the
// supervisor, stops them all when the test ends, and waits until both
// APIs are ready.
func (r *run) startProcesses() {
	add := func(name, kind string, extra ...string) *proc {
		p := &proc{name: name, kind: kind, extraEnv: extra, logPath: filepath.Join(r.logDir, name+".log"),
			exits: map[string]int{}, done: make(chan struct{}), tp: testenv.NewProc(r.t, name, nil, r.bin, kind)}
		r.procs = append(r.procs, p)
		return p
	}
	for i := 1; i <= 2; i++ {
		// The API's port is held by the test for the whole run: each
		// start inherits a listener on it (supervise), connections are
		// refused while the process is down, and no other process can
		// take the port between a kill and the restart.
		p := add(fmt.Sprintf("serve-%d", i), "serve")
		p.port = testenv.NewPort(r.t)
		p.url = "http://" + p.port.Addr()
		r.serves = append(r.serves, p)
	}
	// Static members: a projector restarted after kill -9 takes its
	// partitions back at once instead of stalling the group.
	add("project-1", "project", "IDEMGATE_INSTANCE_ID=project-1")
	add("project-2", "project", "IDEMGATE_INSTANCE_ID=project-2")
	add("relay-1", "relay")
	r.t.Cleanup(func() {
		for _, p := range r.procs {
			p.mu.Lock()
			p.stop = true
			p.mu.Unlock()
			p.signal(syscall.SIGKILL)
		}
		for _, p := range r.procs {
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				r.t.Logf("%s: supervisor did not end", p.name)
			}
		}
	})
	for _, p := range r.procs {
		go r.supervise(p)
	}
	r.waitReady(90 * time.Second)
	r.logf("processes up: %d x serve, 2 x project, 1 x relay", len(r.serves))
}

// waitReady waits until every API answers /readyz with 200.
func (r *run) waitReady(within time.Duration) {
	if p, err := r.ready(within); err != nil {
		r.t.Fatalf("%s not ready within %v (%v); log:\n%s", p.name, within, err, r.tail(p.logPath, 30))
	}
}

// ready waits until every API answers /readyz with 200; on failure it
// returns the first that did not.
func (r *run) ready(within time.Duration) (*proc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for _, p := range r.serves {
		err := testenv.Poll(ctx, within, func() error {
			resp, err := r.client.Get(p.url + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return testenv.Check(resp.StatusCode == 200, "/readyz: %d", resp.StatusCode)
		})
		if err != nil {
			return p, err
		}
	}
	return nil, nil
}

// chaosLoad runs the clients for cfg.duration while the killer kills
// random processes with -9 at random moments (a sixth of the kills, at
// least one, hit a projector whose call to the upstream is in flight),
// the broker restarts once, PostgreSQL crashes once and the upstream
// crashes once; a poison record goes to the commands topic, and the
// projector retrying it is stopped in the middle of its batch, with
// SIGTERM, then kill -9 (poison_test.go).
func (r *run) chaosLoad() {
	cfg := r.cfg
	rng := mrand.New(mrand.NewPCG(cfg.seed, 0))
	start := time.Now()
	at := func(lo, hi float64) time.Duration {
		return time.Duration((lo + rng.Float64()*(hi-lo)) * float64(cfg.duration))
	}
	var kills []time.Duration
	for i := 0; i < cfg.kills; i++ {
		kills = append(kills, at(0.05, 0.95))
	}
	sort.Slice(kills, func(i, j int) bool { return kills[i] < kills[j] })
	midCall := map[int]bool{}
	r.midCall.planned = max(1, cfg.kills/6)
	for _, i := range rng.Perm(cfg.kills)[:min(cfg.kills, r.midCall.planned)] {
		midCall[i] = true
	}
	kafkaAt, pgAt, dupAt, upAt := at(0.2, 0.35), at(0.55, 0.7), at(0.4, 0.5), at(0.75, 0.88)

	// The sleeps below keep the schedule (each event at its moment of
	// the run): they are what is tested, not waits for anything.
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // duplicate delivery while processes die
		defer wg.Done()
		time.Sleep(time.Until(start.Add(dupAt)))
		r.duplicateCommands()
		// A poison record with commands behind it, and its owner stopped
		// twice while it retries it (before PostgreSQL's crash, whose
		// retries would hide its log line).
		r.injectPoison()
	}()
	go func() { // the killer
		defer wg.Done()
		krng := mrand.New(mrand.NewPCG(cfg.seed, 1))
		for i, k := range kills {
			time.Sleep(time.Until(start.Add(k)))
			if midCall[i] {
				r.killMidCall(krng)
			} else {
				r.killOne(krng)
			}
		}
	}()
	go func() { // the backends
		defer wg.Done()
		if r.cl != nil {
			// The clusters' faults instead of the restarts of the
			// single nodes, and the orders service's crash as in the
			// single-node run (cluster_test.go).
			r.clusterFaults(start, at, upAt)
			return
		}
		time.Sleep(time.Until(start.Add(kafkaAt)))
		r.restartKafka()
		time.Sleep(time.Until(start.Add(pgAt)))
		r.crashPostgres(2 * time.Second)
		time.Sleep(time.Until(start.Add(upAt)))
		r.restartUpstream(2 * time.Second)
	}()
	stopPoll := make(chan struct{})
	go r.pollWhileLoading(stopPoll, cfg.seed)
	r.load(cfg.commands, start, cfg.duration, cfg.clients, cfg.seed)
	r.logf("load done: %d commands sent", cfg.commands)
	wg.Wait()
	close(stopPoll)
	r.logf("chaos schedule done")
	r.duplicateCommands()
}

// waitOutagesOver waits (5 min at most) until no backend outage of the
// schedule is under way, for a step that needs the backends: the
// harness's own Kafka client, or calls to catch.
func (r *run) waitOutagesOver(what string) {
	if err := testenv.Poll(context.Background(), 5*time.Minute, func() error {
		return testenv.Check(r.outagesNow.Load() == 0, "%d backend outages under way", r.outagesNow.Load())
	}); err != nil {
		r.logf("%s: the backends' outages did not end: %v", what, err)
	}
}

// killOne sends kill -9 to a random running process's group.
func (r *run) killOne(rng *mrand.Rand) { r.killRandom(rng, r.procs, "process") }

// killRandom sends kill -9 to the group of a random running process among
// procs (what names them in the failure).
func (r *run) killRandom(rng *mrand.Rand, procs []*proc, what string) {
	for try := 0; try < 50; try++ {
		p := procs[rng.IntN(len(procs))]
		if pid, ok := p.signal(syscall.SIGKILL); ok {
			r.mu.Lock()
			r.kills[p.kind]++
			n := r.totalKills()
			r.mu.Unlock()
			r.logf("CHAOS: kill -9 %s (pid %d) [kill %d/%d]", p.name, pid, n, r.cfg.kills)
			return
		}
		time.Sleep(100 * time.Millisecond) // another try, maybe another process: a retry's pause, not a wait
	}
	r.fail("harness", "no running %s to kill", what)
}

// killMidCall kills a projector with -9 while its call to the upstream is
// in flight: the tap holds the next answer the upstream gives (its effect
// is recorded), the killer finds the projector that holds the connection
// and kills it, then the answer is dropped. The command's event is
// delivered again and the call repeated under the same Idempotency-Key.
// Its 30 s to catch a call start once no backend outage is under way:
// while the broker, PostgreSQL or the orders service is down, no call can
// come (beside a CPU-heavy job a broker restart once took 40 s, the whole
// window). A call whose caller is no running projector by then (another
// chaos step killed it a moment before: a fresh-clone CI run's mid-batch
// stop did) is let go, and the next call is caught within the same
// window. When none comes within it, a random projector is killed
// instead (and the check reports the miss).
func (r *run) killMidCall(rng *mrand.Rand) {
	r.waitOutagesOver("the kill of a projector mid-call")
	deadline := time.Now().Add(30 * time.Second)
	for left := time.Until(deadline); left > 0; left = time.Until(deadline) {
		caller, release, ok := r.up.tap.catchCall(left)
		if !ok {
			break
		}
		if r.killCaller(caller) {
			release()
			return
		}
		release()
	}
	r.mu.Lock()
	r.midCall.missed++
	r.mu.Unlock()
	r.logf("no call in flight caught; a random projector is killed instead")
	var projects []*proc
	for _, p := range r.procs {
		if p.kind == "project" {
			projects = append(projects, p)
		}
	}
	r.killRandom(rng, projects, "projector")
}

// killCaller kills the running projector that holds the connection from
// caller to the tap, and reports whether there was one.
func (r *run) killCaller(caller string) bool {
	var projects []*proc
	var pids []int
	for _, p := range r.procs {
		if pid, _ := p.state(); p.kind == "project" && pid != 0 {
			projects = append(projects, p)
			pids = append(pids, pid)
		}
	}
	owner, err := socketOwner(caller, r.up.tap.listen, pids)
	for _, p := range projects {
		if err == nil && p.signalPID(owner, syscall.SIGKILL) {
			r.mu.Lock()
			r.kills[p.kind]++
			r.midCall.done++
			n := r.totalKills()
			r.mu.Unlock()
			r.logf("CHAOS: kill -9 %s (pid %d) while its call is in flight: the upstream has answered, the answer is held [kill %d/%d]",
				p.name, owner, n, r.cfg.kills)
			return true
		}
	}
	r.logf("the caller of a held answer is not a running projector (%v); catching the next call", err)
	return false
}

// totalKills is the number of chaos kills so far; r.mu is held.
func (r *run) totalKills() int {
	n := 0
	for _, v := range r.kills {
		n += v
	}
	return n
}

// topUpFaults makes sure every fault point fired: a point the load did
// not fire (the odds are random) gets high odds, and a trickle of new
// commands runs until it fires; a process that died at it restarts
// without faults. Those commands are checked like the others.
func (r *run) topUpFaults() {
	hits := r.faultHits()
	kinds := map[string]bool{}
	var missing []string
	for kind, points := range pointsOf {
		for _, p := range points {
			if hits[p] == 0 {
				r.topUp[p] = true
				kinds[kind] = true
				missing = append(missing, p)
			}
		}
	}
	if len(missing) == 0 {
		r.logf("every fault point fired during the load: %s", formatCounts(hits))
		return
	}
	sort.Strings(missing)
	r.logf("fault points not fired during the load: %v; top-up", missing)
	r.faultMode.Store(1)
	r.restartAll(kinds, 15*time.Second)
	r.waitReady(90 * time.Second)
	// One new command a second until every point fired: the relay's point
	// needs new outbox rows, and a backlog is relayed in one batch.
	deadline := time.Now().Add(150 * time.Second)
	tickets := make(chan int)
	go func() {
		defer close(tickets)
		next := r.cfg.commands
		for time.Now().Before(deadline) {
			h := r.faultHits()
			done := true
			for p := range r.topUp {
				if h[p] == 0 {
					done = false
				}
			}
			if done {
				return
			}
			tickets <- next
			next++
			r.mu.Lock()
			r.topUpCommands++
			r.mu.Unlock()
			time.Sleep(time.Second) // the pace of the top-up load, not a wait
		}
	}()
	r.runClients(tickets, 4, r.cfg.seed+7, "topup")
	r.logf("top-up done: %d extra commands; fault hits %s", r.topUpCommands, formatCounts(r.faultHits()))
}

// drain restarts every process without faults, then polls every command
// until its recorded outcome appears and the relay has published it.
func (r *run) drain() {
	r.faultMode.Store(2)
	r.logf("drain: restarting every process without faults")
	r.restartAll(nil, 15*time.Second)
	r.waitReady(90 * time.Second)
	start := time.Now()
	deadline := start.Add(r.cfg.drain)
	rng := mrand.New(mrand.NewPCG(r.cfg.seed, 2))
	lastLog := time.Now()
	for {
		r.mu.Lock()
		cmds := append([]*command(nil), r.cmds...)
		r.mu.Unlock()
		// A command answered only with its stored outcome is settled
		// already; one never accepted is reported by the checks.
		var pending []*command
		for _, c := range cmds {
			c.mu.Lock()
			if !c.settled && c.accepted {
				pending = append(pending, c)
			}
			c.mu.Unlock()
		}
		var wg sync.WaitGroup
		work := make(chan *command)
		for w := 0; w < 16; w++ {
			wg.Add(1)
			seed := rng.Uint64() // drawn here: rng is not safe for concurrent use
			go func() {
				defer wg.Done()
				wrng := mrand.New(mrand.NewPCG(seed, uint64(w)))
				for c := range work {
					r.poll(c, wrng)
				}
			}()
		}
		for _, c := range pending {
			work <- c
		}
		close(work)
		wg.Wait()
		left := 0
		for _, c := range pending {
			c.mu.Lock()
			if !c.settled {
				left++
			}
			c.mu.Unlock()
		}
		unsent, states := r.dbProgress()
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lag, err := r.groupLag(lctx)
		cancel()
		if err != nil {
			lag = -1
		}
		if left == 0 && unsent == 0 && lag == 0 {
			r.logf("drain: every command completed, every event consumed and every outcome relayed after %v", time.Since(start).Round(100*time.Millisecond))
			// The clients following a command get its stored answer
			// within their backoff (2 s) now; each gives up at its own
			// deadline otherwise.
			r.followers.Wait()
			return
		}
		if time.Now().After(deadline) {
			r.fail("I2: accepted but not completed", "after a %v drain, %d commands still pending (claims by state: %s), %d outbox rows unsent, projector lag %d records",
				r.cfg.drain, left, states, unsent, lag)
			return
		}
		if time.Since(lastLog) > 5*time.Second {
			r.logf("drain: %d commands pending; claims by state: %s; %d outbox rows unsent; projector lag %d records", left, states, unsent, lag)
			lastLog = time.Now()
		}
		time.Sleep(500 * time.Millisecond) // the pace of the drain's polls (each POSTs every pending command)
	}
}

// dbProgress counts unsent outbox rows and claims by state.
func (r *run) dbProgress() (unsent int, states string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&unsent); err != nil {
		return -1, err.Error()
	}
	rows, err := r.db.Query(ctx, `SELECT `+derivedState+`, count(*) `+claimsJoined+` GROUP BY 1`)
	if err != nil {
		return unsent, err.Error()
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err == nil {
			m[s] = n
		}
	}
	return unsent, formatCounts(m)
}
