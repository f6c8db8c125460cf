package chaos

// The chaos test on the clusters (issue 19): the same run as TestChaos
// (its clients, kills at the fault points, poison record, gateway and
// checks), on a three-node Kafka cluster (replication factor 3,
// min.insync.replicas 2) and a PostgreSQL primary with a synchronous
// standby, with toxiproxies (testenv.NetFault) between serve and the
// database and between the roles and Kafka. Instead of the single nodes'
// restarts, the load meets: kill -9 of the leader of a commands
// partition, later of a results partition, each node started again;
// kill -9 of the database primary, the standby promoted, the old primary
// rejoined; 200 ms of latency and a 5 s partition between serve and the
// database, then its connections hung half-open for 5 s; a 10 s
// partition between the roles and Kafka. The orders service still
// crashes once. Each fault's figures (time without a 202, commands lost,
// effects doubled, porcupine's verdict on the keys it touched) are
// logged at the end.
//
//	go test -count=1 -v -run TestChaosCluster ./chaos/   # CI size (default)
//	make chaos-cluster                                 # full size
//
// Settings: as TestChaos's (CHAOS_COMMANDS, CHAOS_KILLS, CHAOS_CLIENTS,
// CHAOS_DURATION, 90s here, CHAOS_DRAIN, CHAOS_SEED, CHAOS_BIN,
// CHAOS_ORDERS_BIN), and the backends' ports: CHAOS_CLUSTER_KAFKA_PORT
// (27092: node N listens on it + 2(N-1), its controller on the next
// port) and CHAOS_CLUSTER_PG_PORT (26432: the primary, the standby on
// the next port). The proxies listen on ports the test holds.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/chaos/history"
	"github.com/idemgate/idemgate/pgserver"
	"github.com/idemgate/idemgate/testenv"
)

func TestChaosCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos test runs for minutes; skipped with -short")
	}
	newRun(t, true).execute()
}

// clusterRun is what the cluster run adds to a run.
type clusterRun struct {
	kafkaEnv   []string             // scripts/kafka.sh's: three nodes, advertising their proxies
	kafka      [3]*testenv.NetFault // in front of node N+1: every client and the replication go through it
	db         [2]*testenv.NetFault // in front of node 1 and node 2 of the pair, for serve
	pgCfg      pgserver.Config      // the pair's
	pair       *pgserver.Pair       //
	serveDBURL string               // serve's DATABASE_URL: both proxies
	faults     []faultWindow        // under run.mu
}

// faultWindow is one fault of the schedule: from its beginning until the
// backends serve again (a new leader and three in-sync replicas, the
// standby promoted and the old primary streaming again, the link healed
// and every API ready).
type faultWindow struct {
	name       string
	start, end time.Time
	note       string
}

func (r *run) addFault(name string, start time.Time, note string) {
	end := time.Now()
	r.mu.Lock()
	r.cl.faults = append(r.cl.faults, faultWindow{name: name, start: start, end: end, note: note})
	r.mu.Unlock()
	r.logf("CHAOS: %s over after %v (%s)", name, end.Sub(start).Round(time.Millisecond), note)
}

// startClusterBackends starts the proxies, then the three Kafka nodes
// behind them (the nodes advertise the proxies' ports, so every client
// and the replication between the nodes go through them) and the
// PostgreSQL pair; it stops them all when the test ends.
func (r *run) startClusterBackends() {
	t, cl := r.t, r.cl
	var adv []string
	for n := range cl.kafka {
		cl.kafka[n] = testenv.NewNetFault(t, "tcp", fmt.Sprintf("127.0.0.1:%d", r.cfg.kafkaPort+2*n))
		_, port, _ := net.SplitHostPort(cl.kafka[n].Addr())
		adv = append(adv, port)
	}
	cl.kafkaEnv = []string{
		"KAFKA_NODES=3",
		"KAFKA_ADVERTISED_PORTS=" + strings.Join(adv, ","),
		// kafka.sh's own heap: the log cleaner alone takes a 128 MB
		// dedupe buffer at start, and 256 MB ran out (OutOfMemoryError
		// in LogManager's start-up, a fresh-clone CI run).
		"KAFKA_HEAP_OPTS=-Xmx512m -Xms512m",
		// The client compiler only: a JVM starts in a fraction of the
		// CPU, which a start-node in the middle of the load waits for.
		"KAFKA_JVM_OPTS=-XX:TieredStopAtLevel=1",
	}
	log := appendFile(filepath.Join(r.logDir, "postgres.log"))
	cl.pgCfg = pgserver.Config{DataDir: filepath.Join(r.pgDir, "node1"), StandbyDataDir: filepath.Join(r.pgDir, "node2"),
		Port: r.cfg.pgPort, StandbyPort: r.cfg.pgPort + 1, NoFsync: true, Logger: slog.New(slog.NewTextHandler(log, nil))}
	r.stopBackendsBeforeAndAfter(func(ctx context.Context) error {
		p, err := pgserver.OpenPair(cl.pgCfg)
		if err != nil {
			return err
		}
		return p.Stop(ctx)
	})
	start := time.Now()
	fresh := cl.pgCfg
	fresh.Fresh = true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pair, err := pgserver.StartPair(ctx, fresh)
	if err != nil {
		t.Fatalf("the PostgreSQL pair did not start: %v\n%s", err, r.tail(filepath.Join(r.logDir, "postgres.log"), 30))
	}
	cl.pair = pair
	// connect_timeout=1: pgx applies it to each host, so a host that
	// holds the connection attempt (a partition, a half-open link) costs
	// one second, not the request's whole deadline (RELIABILITY.md,
	// database failover).
	r.dbURL = pair.URL() + "&connect_timeout=1"
	for n := range cl.db {
		cl.db[n] = testenv.NewNetFault(t, "tcp", fmt.Sprintf("127.0.0.1:%d", r.cfg.pgPort+n))
	}
	cl.serveDBURL = fmt.Sprintf("postgres://postgres@%s,%s/idemgate?sslmode=disable&target_session_attrs=read-write&connect_timeout=1",
		cl.db[0].Addr(), cl.db[1].Addr())
	line, err := r.script("kafka.sh", "start", "KAFKA_FRESH=1")
	if err != nil {
		t.Fatalf("the Kafka cluster did not start: %v\n%s", err, r.tail(filepath.Join(r.logDir, "scripts.log"), 30))
	}
	if r.brokers, err = valueOf(line, "KAFKA_BROKERS"); err != nil {
		t.Fatal(err)
	}
	r.logf("backends up in %v: %s (serve through %s), Kafka %s (the proxies; the nodes listen on %d, %d, %d)",
		time.Since(start).Round(time.Millisecond), r.dbURL, cl.serveDBURL, r.brokers, r.cfg.kafkaPort, r.cfg.kafkaPort+2, r.cfg.kafkaPort+4)
}

// admin runs f with an admin client of the cluster (through the proxies).
func (r *run) admin(f func(*kadm.Client) error) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(r.brokers, ",")...))
	if err != nil {
		return err
	}
	defer cl.Close()
	return f(kadm.NewClient(cl))
}

// leaderOf is the node that leads partition p of topic, from the
// cluster's metadata.
func (r *run) leaderOf(ctx context.Context, topic string, p int32) (int32, error) {
	leader := int32(-1)
	err := r.admin(func(adm *kadm.Client) error {
		d, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		pd, ok := d[topic].Partitions[p]
		if !ok || pd.Err != nil {
			return fmt.Errorf("%s/%d: %v", topic, p, pd.Err)
		}
		leader = pd.Leader
		return nil
	})
	return leader, err
}

// runTopics are the run's topics (named by its prefix).
func (r *run) runTopics(d kadm.TopicDetails) []kadm.TopicDetail {
	var out []kadm.TopicDetail
	for name, td := range d {
		if strings.HasPrefix(name, r.prefix+".") {
			out = append(out, td)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// inSync is nil once every partition of the run's topics has three
// in-sync replicas.
func (r *run) inSync(ctx context.Context) error {
	return r.admin(func(adm *kadm.Client) error {
		d, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		tds := r.runTopics(d)
		if len(tds) == 0 {
			return fmt.Errorf("no topic %s.*", r.prefix)
		}
		for _, td := range tds {
			for _, p := range td.Partitions {
				if p.Err != nil || len(p.ISR) != 3 {
					return fmt.Errorf("%s/%d: ISR %v (%v)", td.Topic, p.Partition, p.ISR, p.Err)
				}
			}
		}
		return nil
	})
}

// killLeader kills with -9 the node that leads partition 0 of topic,
// waits until the metadata names another leader, starts the node again
// (scripts/kafka.sh start-node) and waits until every partition has
// three in-sync replicas.
func (r *run) killLeader(topic, what string) {
	ctx := context.Background()
	name := "kill -9 of the leader of a " + what + " partition"
	var leader int32
	if err := testenv.Poll(ctx, time.Minute, func() error {
		l, err := r.leaderOf(ctx, topic, 0)
		leader = l
		if err != nil {
			return err
		}
		return testenv.Check(l >= 1, "leader %d", l)
	}); err != nil {
		r.fail("harness", "%s: the leader of %s/0: %v", name, topic, err)
		return
	}
	start := time.Now()
	r.logf("CHAOS: kill -9 of Kafka node %d, the leader of %s/0", leader, topic)
	if _, err := r.script("kafka.sh", "kill "+strconv.Itoa(int(leader))); err != nil {
		r.fail("backend", "%s: %v", name, err)
		return
	}
	if err := testenv.Poll(ctx, 2*time.Minute, func() error {
		l, err := r.leaderOf(ctx, topic, 0)
		if err != nil {
			return err
		}
		return testenv.Check(l >= 1 && l != leader, "leader %d", l)
	}); err != nil {
		r.fail("backend", "%s: no other leader of %s/0: %v", name, topic, err)
	}
	newLeader := time.Since(start)
	if _, err := r.script("kafka.sh", "start-node "+strconv.Itoa(int(leader))); err != nil {
		r.fail("backend", "%s: start-node %d: %v", name, leader, err)
		return
	}
	if err := testenv.Poll(ctx, 3*time.Minute, func() error { return r.inSync(ctx) }); err != nil {
		r.fail("backend", "%s: the partitions are not in sync again: %v", name, err)
	}
	r.backUp(&r.kafkaOut, fmt.Sprintf("Kafka node %d", leader), start)
	r.addFault(name, start, fmt.Sprintf("node %d; another leader after %v; three in-sync replicas after %v",
		leader, newLeader.Round(time.Millisecond), time.Since(start).Round(time.Millisecond)))
}

// partitionKafka cuts every link to the three nodes for hold (every
// role's, and the replication between the nodes: they advertise the
// proxies), heals it, and waits until every partition is in sync.
func (r *run) partitionKafka(hold time.Duration) {
	name := fmt.Sprintf("%v partition project<->Kafka (every role and the replication)", hold)
	r.outagesNow.Add(1)
	defer r.outagesNow.Add(-1)
	start := time.Now()
	r.logf("CHAOS: %s", name)
	for _, f := range r.cl.kafka {
		f.Partition()
	}
	time.Sleep(hold) // the partition itself, part of the schedule
	for _, f := range r.cl.kafka {
		f.Heal()
	}
	healed := time.Since(start)
	ctx := context.Background()
	if err := testenv.Poll(ctx, 2*time.Minute, func() error { return r.inSync(ctx) }); err != nil {
		r.fail("backend", "%s: not in sync after healing: %v", name, err)
	}
	r.addFault(name, start, fmt.Sprintf("healed after %v, three in-sync replicas %v later", healed.Round(time.Millisecond),
		(time.Since(start)-healed).Round(time.Millisecond)))
}

// dbFault sets a fault on both database proxies (serve's link) for hold,
// heals it, and waits until every API is ready again.
func (r *run) dbFault(name string, hold time.Duration, set func(*testenv.NetFault)) {
	start := time.Now()
	r.logf("CHAOS: %s", name)
	for _, f := range r.cl.db {
		set(f)
	}
	time.Sleep(hold) // the fault itself, part of the schedule
	for _, f := range r.cl.db {
		f.Heal()
	}
	healed := time.Since(start)
	if p, err := r.ready(2 * time.Minute); err != nil {
		r.fail("backend", "%s: %s not ready after healing: %v", name, p.name, err)
	}
	r.addFault(name, start, fmt.Sprintf("healed after %v, every API ready %v later", healed.Round(time.Millisecond),
		(time.Since(start)-healed).Round(time.Millisecond)))
}

// failoverDB kills the primary with -9, promotes the standby (it returns
// once the promoted node takes writes), and rejoins the old primary as
// the new standby (once it streams, synchronously).
func (r *run) failoverDB() {
	name := "kill -9 of the database primary, standby promoted"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r.outagesNow.Add(1)
	start := time.Now()
	r.logf("CHAOS: %s", name)
	err := r.cl.pair.KillPrimary()
	if err == nil {
		err = r.cl.pair.Promote(ctx)
	}
	promoted := time.Since(start)
	r.outagesNow.Add(-1)
	if err != nil {
		r.fail("backend", "%s: %v", name, err)
		return
	}
	r.backUp(&r.pgOut, "PostgreSQL (the standby, promoted)", start)
	if err := r.cl.pair.Rejoin(ctx); err != nil {
		r.fail("backend", "%s: rejoin: %v", name, err)
		return
	}
	// The old primary is a standby now: it says so itself.
	standby := r.cl.pair.Standby()
	if err := testenv.Poll(ctx, time.Minute, func() error {
		if standby == nil {
			return fmt.Errorf("no standby")
		}
		conn, err := pgx.Connect(ctx, standby.AdminURL())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		// READ COMMITTED: a standby refuses the server's default,
		// SERIALIZABLE.
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		var rec bool
		if err := tx.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&rec); err != nil {
			return err
		}
		return testenv.Check(rec, "pg_is_in_recovery() is false")
	}); err != nil {
		r.fail("backend", "%s: the old primary is no standby: %v", name, err)
	}
	r.addFault(name, start, fmt.Sprintf("promoted after %v; the old primary streams again %v later",
		promoted.Round(time.Millisecond), (time.Since(start)-promoted).Round(time.Millisecond)))
}

// clusterFaults runs the cluster run's schedule, in three tracks that
// overlap: Kafka (a partition, then the commands leader, then the
// results leader), the database (latency, failover, partition,
// half-open) and the orders service's crash, after the database's
// faults and between Kafka's (its calls need a projecting pipeline to
// meet its outage).
// Each fault starts at its moment of the load, or when the one before
// it in its track is over.
func (r *run) clusterFaults(start time.Time, at func(lo, hi float64) time.Duration, upAt time.Duration) {
	kPart, kCmd, kRes := at(0.04, 0.08), at(0.2, 0.25), at(0.45, 0.5)
	dLat, dFail, dPart, dHalf := at(0.08, 0.12), at(0.25, 0.3), at(0.4, 0.45), at(0.5, 0.55)
	until := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) } // the schedule's pacing
	// The orders service's crash never overlaps a Kafka fault: a killed
	// node leads commands partitions too, and its outage (2 s) must meet
	// calls, which need the projectors consuming.
	var kafkaFault sync.Mutex
	kafka := func(f func()) {
		kafkaFault.Lock()
		defer kafkaFault.Unlock()
		f()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		until(kPart)
		kafka(func() { r.partitionKafka(10 * time.Second) })
		until(kCmd)
		kafka(func() { r.killLeader(r.prefix+".commands", "commands") })
		until(kRes)
		kafka(func() { r.killLeader(r.prefix+".results", "results") })
	}()
	go func() {
		defer wg.Done()
		until(dLat)
		r.dbFault("200 ms latency serve<->database", 5*time.Second, func(f *testenv.NetFault) { f.Latency(200 * time.Millisecond) })
		until(dFail)
		r.failoverDB()
		until(dPart)
		r.dbFault("5 s partition serve<->database", 5*time.Second, (*testenv.NetFault).Partition)
		until(dHalf)
		r.dbFault("5 s half-open serve<->database", 5*time.Second, (*testenv.NetFault).HalfOpen)
		until(upAt)
		kafka(func() { r.restartUpstream(2 * time.Second) })
	}()
	wg.Wait()
}

// checkCluster adds the cluster's checks: nothing left pending once the
// faults stopped, and the topics replicated as a platform team expects
// (three replicas, min.insync.replicas 2), all in sync.
func (r *run) checkCluster() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var pending int
	if err := r.db.QueryRow(ctx, `SELECT count(*) FROM command_pending`).Scan(&pending); err != nil {
		r.fail("harness", "read command_pending: %v", err)
	} else if pending != 0 {
		r.fail("I2: nothing pending after the faults", "%d commands in command_pending after the drain", pending)
	}
	err := r.admin(func(adm *kadm.Client) error {
		d, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		var names []string
		for _, td := range r.runTopics(d) {
			names = append(names, td.Topic)
			for _, p := range td.Partitions {
				if len(p.Replicas) != 3 || len(p.ISR) != 3 {
					r.fail("cluster: replication", "%s/%d: replicas %v, in sync %v", td.Topic, p.Partition, p.Replicas, p.ISR)
				}
			}
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, names...)
		if err != nil {
			return err
		}
		for _, rc := range rcs {
			v := "?"
			for _, c := range rc.Configs {
				if c.Key == "min.insync.replicas" && c.Value != nil {
					v = *c.Value
				}
			}
			if v != "2" {
				r.fail("cluster: replication", "%s: min.insync.replicas %s", rc.Name, v)
			}
		}
		return nil
	})
	if err != nil {
		r.fail("harness", "read the topics' metadata: %v", err)
	}
}

// clusterFigures logs, for each fault, the figures RELIABILITY.md
// reports: the longest time without a 202 around it, the commands
// accepted meanwhile and of them those lost (not completed) and those
// with their effect doubled, and porcupine's verdict on the keys that had
// a request in flight meanwhile.
func (r *run) clusterFigures(tl tally) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Per key: its claim's state and operation; per operation: its effects.
	type claimed struct{ opID, state string }
	claims := map[string]claimed{}
	rows, err := r.db.Query(ctx, `SELECT c.tenant_id || '/' || c.operation || '/' || c.idem_key, c.operation_id::TEXT, `+derivedState+` `+claimsJoined)
	if err != nil {
		r.fail("harness", "figures: %v", err)
		return
	}
	for rows.Next() {
		var k string
		var c claimed
		if err := rows.Scan(&k, &c.opID, &c.state); err != nil {
			r.fail("harness", "figures: %v", err)
		}
		claims[k] = c
	}
	rows.Close()
	effects := map[string]int{} // operation id -> rows (payments, refunds) or upstream lines
	for _, q := range []string{`SELECT operation_id::TEXT, count(*) FROM payments GROUP BY 1`, `SELECT operation_id::TEXT, count(*) FROM refunds GROUP BY 1`} {
		rows, err := r.db.Query(ctx, q)
		if err != nil {
			r.fail("harness", "figures: %v", err)
			return
		}
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err == nil {
				effects[id] += n
			}
		}
		rows.Close()
	}
	if up, err := r.readUpstream(ctx); err == nil {
		for key, n := range up.lines {
			effects[key] += n
		}
	}
	r.mu.Lock()
	acks := append([]time.Time(nil), r.acks...)
	faults := append([]faultWindow(nil), r.cl.faults...)
	cmds := append([]*command(nil), r.cmds...)
	r.mu.Unlock()
	sort.Slice(acks, func(i, j int) bool { return acks[i].Before(acks[j]) })
	entries := r.hist.Entries()
	base := r.hist.Base()

	var b strings.Builder
	fmt.Fprintf(&b, "==================== the clusters' faults (run %s, seed %d) ====================\n", r.runID, r.cfg.seed)
	fmt.Fprintf(&b, "| fault | over after | time without a 202 | commands accepted meanwhile | lost | doubled | porcupine (keys in flight meanwhile) | notes |\n")
	for _, f := range faults {
		gap := longestGap(acks, f.start, f.end)
		accepted, lost, doubled := 0, 0, 0
		for _, c := range cmds {
			c.mu.Lock()
			ok, at := c.accepted, c.acceptedAt
			c.mu.Unlock()
			if !ok || at.Before(f.start) || at.After(f.end) {
				continue
			}
			accepted++
			cl, found := claims[c.tenant+"/"+c.operation+"/"+c.key]
			if !found || cl.state != "completed" {
				lost++
				continue
			}
			if effects[cl.opID] > 1 {
				doubled++
			}
		}
		if lost > 0 || doubled > 0 {
			r.fail("cluster: per fault", "%s: %d commands accepted meanwhile, %d lost, %d doubled", f.name, accepted, lost, doubled)
		}
		// The keys with a request in flight during the fault, whole.
		from, to := int64(f.start.Sub(base)), int64(f.end.Sub(base))
		keys := map[string]bool{}
		for _, e := range entries {
			if e.Call <= to && (e.Return < 0 || e.Return >= from) {
				keys[e.Key] = true
			}
		}
		var sub []history.Entry
		for _, e := range entries {
			if keys[e.Key] {
				sub = append(sub, e)
			}
		}
		v := history.Check(sub, historyTimeout)
		if v.Result != porcupine.Ok {
			r.fail("cluster: per fault", "%s: porcupine %s on %d keys", f.name, v.Result, v.Keys)
		}
		fmt.Fprintf(&b, "| %s | %v | %v | %d | %d | %d | %s, %d requests over %d keys | %s |\n", f.name, f.end.Sub(f.start).Round(100*time.Millisecond),
			gap.Round(time.Millisecond), accepted, lost, doubled, v.Result, v.Operations, v.Keys, f.note)
	}
	fmt.Fprintf(&b, "whole run: porcupine %s, %d requests over %d keys; %d x 202; history checked per key\n",
		tl.history.verdict, tl.history.requests, tl.history.keys, len(acks))
	r.t.Log("\n" + b.String())
}

// longestGap is the longest time between successive 202s (ts sorted)
// that overlaps [from, to]: how long the clients went without one during
// a fault. A gap still open at the end of ts counts up to to.
func longestGap(ts []time.Time, from, to time.Time) time.Duration {
	var gap time.Duration
	for i := 1; i < len(ts); i++ {
		if ts[i].After(from) && ts[i-1].Before(to) {
			gap = max(gap, ts[i].Sub(ts[i-1]))
		}
	}
	if n := len(ts); n > 0 && ts[n-1].Before(to) {
		last := ts[n-1]
		if last.Before(from) {
			last = from
		}
		gap = max(gap, to.Sub(last))
	}
	return gap
}
