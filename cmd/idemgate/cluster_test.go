package main

// A real three-node Kafka cluster (scripts/kafka.sh, KAFKA_NODES=3) under a
// running stack: partition leaders die by kill -9 and come back, and no
// accepted command is lost or applied twice (issue 19).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/testenv"
)

// kafkaCluster is a three-node KRaft cluster of the test's own, run by
// scripts/kafka.sh.
type kafkaCluster struct {
	t       *testing.T
	script  string
	vars    []string // the script's environment: ports, run dir
	brokers []string
}

// startKafkaCluster starts three nodes on ports out of the kernel's
// ephemeral range (node N on base+2(N-1) and base+2(N-1)+1: the script's
// layout), in a run dir of t's own, and stops them when t ends. The JVMs
// bind their own ports, which cannot be held for them (testenv.Port): if
// another listener has one, the start fails saying so and the cluster
// starts again on others, as startSASLBroker does.
func startKafkaCluster(t *testing.T) *kafkaCluster {
	t.Helper()
	script, err := filepath.Abs("../../scripts/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	c := &kafkaCluster{t: t, script: script}
	dir := t.TempDir()
	t.Cleanup(func() { // before the run dir is removed
		if c.vars != nil {
			if out, err := c.run("stop"); err != nil {
				t.Errorf("kafka.sh stop: %v\n%s", err, out)
			}
		}
	})
	for attempt := 1; ; attempt++ {
		base := clusterBasePort(t)
		c.vars = append(os.Environ(),
			"KAFKA_NODES=3",
			"KAFKA_RUN_DIR="+filepath.Join(dir, "kafka"),
			"KAFKA_PORT="+strconv.Itoa(base),
			"KAFKA_CONTROLLER_PORT="+strconv.Itoa(base+1),
			// kafka.sh's own heap: the log cleaner alone takes a 128 MB
			// dedupe buffer at start, and 256 MB ran out (OutOfMemoryError
			// in LogManager's start-up, a fresh-clone CI run).
			"KAFKA_HEAP_OPTS=-Xmx512m -Xms512m",
			// The client compiler only: a JVM starts in a fraction of the
			// CPU, which a restart in the middle of the test waits for.
			"KAFKA_JVM_OPTS=-XX:TieredStopAtLevel=1",
		)
		t0 := time.Now()
		out, err := c.run("start")
		line := strings.TrimSpace(out)
		if brokers, ok := strings.CutPrefix(line, "KAFKA_BROKERS="); err == nil && ok {
			c.brokers = strings.Split(brokers, ",")
			t.Logf("three-node cluster %v started in %s", c.brokers, time.Since(t0).Round(time.Millisecond))
			return c
		}
		if !strings.Contains(out, "already in use") || attempt == 5 {
			t.Fatalf("KAFKA_NODES=3 scripts/kafka.sh start (Java and Maven are needed): %v\n%s", err, out)
		}
		t.Logf("a port of %d-%d is another listener's; starting on others", base, base+5)
		_, _ = c.run("stop")
	}
}

// clusterBasePort picks six consecutive ports below the ephemeral range,
// where no outgoing connection takes one.
func clusterBasePort(t *testing.T) int {
	t.Helper()
	base, low := belowEphemeral(t, 7)
	return base + rand.IntN(low-6-base)
}

// run runs scripts/kafka.sh with the cluster's environment; stdout (the
// KAFKA_BROKERS line) is returned on success, stdout and stderr on failure.
func (c *kafkaCluster) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.script, args...)
	cmd.Env = c.vars
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func (c *kafkaCluster) must(args ...string) {
	c.t.Helper()
	if out, err := c.run(args...); err != nil {
		c.t.Fatalf("scripts/kafka.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// acceptLog records what the load's clients were answered: the keys
// answered (202, or the stored answer on a retry) with their operation
// ids, and when each 202 came.
type acceptLog struct {
	mu       sync.Mutex
	ops      map[string]string // idempotency key -> operation id ("" = a stored answer: read from the claim)
	accepted []time.Time       // each 202, in arrival order per client
	retries  int               // requests whose outcome was unknown (error, 5xx) and were sent again
	errs     []string          // answers no client should get
}

// runLoad posts payments, each under a key of its own, from clients
// sending one request at a time, perSecond requests a second between them,
// until ctx ends; a request whose outcome is unknown (an error, a 5xx) is
// sent again under its key until it is answered. The returned function
// waits for the clients.
func runLoad(ctx context.Context, base string, clients, perSecond int, log *acceptLog) (wait func()) {
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 10 * time.Second}
	// The pace, shared by the clients: a steady load a machine running
	// three brokers can serve, not as much as it can take.
	pace := time.NewTicker(time.Second / time.Duration(perSecond))
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		pace.Stop()
	}()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("c%d-%d", w, i)
				body := fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"cus_%d"}`, 100+i, w)
				// The last command's retries outlive ctx (by 30 s at most):
				// every key sent is answered.
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					select {
					case <-pace.C:
					case <-ctx.Done(): // the last command's retries go unpaced
					}
					req, _ := http.NewRequest("POST", base+"/v1/payments", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer key-a")
					req.Header.Set("Idempotency-Key", key)
					req.Header.Set("Content-Type", "application/json")
					resp, err := hc.Do(req)
					if err != nil {
						log.retry()
						continue
					}
					var b bytes.Buffer
					_, _ = b.ReadFrom(resp.Body)
					resp.Body.Close()
					if resp.StatusCode >= 500 {
						log.retry()
						continue
					}
					log.answer(key, resp.StatusCode, b.Bytes())
					break
				}
			}
		}()
	}
	return wg.Wait
}

func (l *acceptLog) retry() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retries++
}

func (l *acceptLog) answer(key string, status int, body []byte) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch status {
	case 202:
		var v struct {
			OperationID string `json:"operation_id"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.OperationID == "" {
			l.errs = append(l.errs, fmt.Sprintf("%s: 202 without an operation id: %s", key, body))
			return
		}
		l.ops[key] = v.OperationID
		l.accepted = append(l.accepted, now)
	case 200, 201: // the stored answer to a retry whose first attempt claimed the key
		if _, ok := l.ops[key]; !ok {
			l.ops[key] = ""
		}
	default:
		l.errs = append(l.errs, fmt.Sprintf("%s: %d %s", key, status, body))
	}
}

// snapshot returns the 202s' times, sorted, and how many keys were answered.
func (l *acceptLog) snapshot() ([]time.Time, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := slices.Clone(l.accepted)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return ts, len(l.ops)
}

// longestGap is the longest time between successive 202s that overlaps
// [from, to]: how long clients went without an accepted command around a
// fault.
func longestGap(ts []time.Time, from, to time.Time) time.Duration {
	var longest time.Duration
	for i := 1; i < len(ts); i++ {
		if ts[i].After(from) && ts[i-1].Before(to) {
			longest = max(longest, ts[i].Sub(ts[i-1]))
		}
	}
	return longest
}

// TestKafkaCluster runs serve, project and relay on a three-node cluster
// under load; kills the leader of a commands partition with kill -9, then
// the leader of a results partition, and starts each again. Every
// command answered is applied exactly once (one payments row), its
// result event is on the results topic at least once, and none stays
// pending. RELIABILITY.md ("Kafka cluster: a partition leader dies")
// reports its figures.
func TestKafkaCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a three-node Kafka cluster (scripts/kafka.sh)")
	}
	cluster := startKafkaCluster(t)
	s := startStack(t, "KAFKA_BROKERS", strings.Join(cluster.brokers, ","),
		"IDEMGATE_SWEEP_INTERVAL", "200ms", "IDEMGATE_LEASE", "2s")
	s.brokers = cluster.brokers
	adm := s.admin()
	ctx := context.Background()

	// The topics idemgate created: three replicas, two in sync to write.
	// A broker learns of a new topic from the controller a moment after
	// its creation, so the metadata is read until the broker asked knows
	// all three.
	var details kadm.TopicDetails
	testenv.Eventually(t, 30*time.Second, "the three topics in the metadata", func() error {
		var err error
		if details, err = adm.ListTopics(ctx, s.topics.All()...); err != nil {
			return err
		}
		for _, topic := range s.topics.All() {
			if d := details[topic]; d.Err != nil || len(d.Partitions) != 3 {
				return fmt.Errorf("%s: %d partitions, %v", topic, len(d.Partitions), d.Err)
			}
		}
		return nil
	})
	configs, err := adm.DescribeTopicConfigs(ctx, s.topics.All()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range s.topics.All() {
		d := details[topic]
		for _, p := range d.Partitions {
			mustEqual(t, fmt.Sprintf("%s/%d replicas", topic, p.Partition), len(p.Replicas), 3)
		}
		rc, err := configs.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		isr := ""
		for _, c := range rc.Configs {
			if c.Key == "min.insync.replicas" {
				isr = c.MaybeValue()
				mustEqual(t, topic+" min.insync.replicas source", c.Source, kmsg.ConfigSourceDynamicTopicConfig) // set by idemgate
			}
		}
		mustEqual(t, topic+" min.insync.replicas", isr, "2")
	}

	// partition returns a partition's current leader and in-sync replicas.
	partition := func(topic string, p int32) (int32, []int32, error) {
		d, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return -1, nil, err
		}
		pd, ok := d[topic].Partitions[p]
		if !ok || pd.Err != nil {
			return -1, nil, fmt.Errorf("%s/%d: %v", topic, p, pd.Err)
		}
		return pd.Leader, pd.ISR, nil
	}
	count := func(sql string) int { return s.count(sql) }

	log := &acceptLog{ops: map[string]string{}}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	wait := runLoad(loadCtx, s.base, 4, 100, log)
	testenv.Eventually(t, 60*time.Second, "the load's first commands complete", func() error {
		n := count(`SELECT count(*) FROM payments`)
		return testenv.Check(n >= 50, "%d payments", n)
	})
	// The baseline: 200 commands applied once the pipeline runs.
	warm, mark := time.Now(), count(`SELECT count(*) FROM payments`)
	testenv.Eventually(t, 60*time.Second, "200 more commands complete", func() error {
		n := count(`SELECT count(*) FROM payments`)
		return testenv.Check(n >= mark+200, "%d payments, %d at the start", n, mark)
	})
	warmed := time.Now()

	// killLeader kills the leader of topic's partition 0, waits until
	// another broker leads it and progress (what progressed counts it)
	// went 30 further, starts the node again, and waits until every
	// partition of idemgate's topics has three in-sync replicas again.
	type fault struct {
		what       string
		node       int32
		killed     time.Time
		newLeader  time.Duration // from the kill to another leader in the metadata
		restart    time.Duration // start-node, until the node is registered again
		back       time.Duration // from the kill to three in-sync replicas everywhere
		longestGap time.Duration // without a 202, around the kill (longestGap)
		completion time.Duration // the longest from claim to completion of a command claimed meanwhile
		publish    time.Duration // the longest from completion to the result published, meanwhile
	}
	killLeader := func(topic, what string, progressed func() int) fault {
		t.Helper()
		leader, _, err := partition(topic, 0)
		if err != nil || leader < 1 {
			t.Fatalf("leader of %s/0: %d, %v", topic, leader, err)
		}
		mark := progressed()
		f := fault{what: what, node: leader, killed: time.Now()}
		cluster.must("kill", strconv.Itoa(int(leader)))
		t.Logf("killed node %d, the leader of %s/0 (kill -9)", leader, topic)
		testenv.Eventually(t, 60*time.Second, fmt.Sprintf("another broker leads %s/0", topic), func() error {
			l, _, err := partition(topic, 0)
			if err != nil {
				return err
			}
			return testenv.Check(l >= 1 && l != leader, "leader %d", l)
		})
		f.newLeader = time.Since(f.killed)
		testenv.Eventually(t, 60*time.Second, what+" goes on without node "+strconv.Itoa(int(leader)), func() error {
			n := progressed()
			return testenv.Check(n >= mark+30, "%d, %d at the kill", n, mark)
		})
		t0 := time.Now()
		cluster.must("start-node", strconv.Itoa(int(leader)))
		f.restart = time.Since(t0)
		testenv.Eventually(t, 90*time.Second, "every partition has three in-sync replicas again", func() error {
			d, err := adm.ListTopics(ctx, s.topics.All()...)
			if err != nil {
				return err
			}
			for _, td := range d {
				for _, p := range td.Partitions {
					if len(p.ISR) != 3 {
						return fmt.Errorf("%s/%d: ISR %v", td.Topic, p.Partition, p.ISR)
					}
				}
			}
			return nil
		})
		f.back = time.Since(f.killed)
		return f
	}
	applied := func() int { return count(`SELECT count(*) FROM payments`) }
	published := func() int { return count(`SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL`) }
	faults := []fault{
		killLeader(s.topics.Commands, "applying commands", applied),
		killLeader(s.topics.Results, "publishing results", published),
	}
	stopLoad()
	wait()
	times, answered := log.snapshot()
	baseline := longestGap(times, warm, warmed)
	log.mu.Lock()
	if len(log.errs) > 0 {
		t.Errorf("%d unexpected answers, e.g. %s", len(log.errs), log.errs[0])
	}
	retries := log.retries
	log.mu.Unlock()

	// Nothing stays pending: every claim completes and every result is
	// published.
	testenv.Eventually(t, 90*time.Second, "every command completes and its result is published", func() error {
		pending := count(`SELECT count(*) FROM command_pending`)
		open := count(`SELECT count(*) FROM idempotency_claims WHERE state <> 'COMPLETED'`)
		unsent := count(`SELECT count(*) FROM outbox WHERE sent_at IS NULL`)
		return testenv.Check(pending == 0 && open == 0 && unsent == 0, "%d unacknowledged, %d not completed, %d results unsent", pending, open, unsent)
	})

	// The figures: around each fault, from the kill to three in-sync
	// replicas again (the database's clock is the test's: one machine).
	latest := func(sql string, from, to time.Time) time.Duration {
		var ms float64
		if err := s.DB.Pool.QueryRow(ctx, sql, from, to).Scan(&ms); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ms * float64(time.Millisecond))
	}
	const (
		completionSQL = `SELECT coalesce(max(extract(epoch FROM o.created_at - c.created_at) * 1000), 0)
			FROM idempotency_claims c JOIN outbox o USING (operation_id) WHERE c.created_at BETWEEN $1 AND $2`
		publishSQL = `SELECT coalesce(max(extract(epoch FROM sent_at - created_at) * 1000), 0) FROM outbox WHERE created_at BETWEEN $1 AND $2`
	)
	for i := range faults {
		f := &faults[i]
		to := f.killed.Add(f.back)
		f.longestGap = longestGap(times, f.killed, to)
		f.completion = latest(completionSQL, f.killed, to)
		f.publish = latest(publishSQL, f.killed, to)
	}
	baseCompletion := latest(completionSQL, warm, warmed)
	basePublish := latest(publishSQL, warm, warmed)

	// Every command answered was applied exactly once.
	claims := testenv.Claims(t, s.DB) // key -> operation id
	lost := 0
	for key, op := range log.ops {
		if claims[key] == "" || op != "" && op != claims[key] {
			lost++
			t.Errorf("%s: answered with operation %q, claimed as %q", key, op, claims[key])
		}
	}
	doubled := count(`SELECT count(*) FROM (SELECT operation_id FROM payments GROUP BY operation_id HAVING count(*) > 1) d`)
	missing := count(`SELECT count(*) FROM idempotency_claims c WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.operation_id = c.operation_id)`)
	mustEqual(t, "payments without a claim", count(`SELECT count(*) FROM payments p WHERE NOT EXISTS (SELECT 1 FROM idempotency_claims c WHERE c.operation_id = p.operation_id)`), 0)

	// Every result event is on the results topic at least once.
	onTopic := map[string]int{}
	for _, rec := range s.topicRecords(s.topics.Results) {
		env, err := events.Decode(rec)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			OperationID string `json:"operation_id"`
		}
		if err := json.Unmarshal(env.Data, &c); err != nil {
			t.Fatal(err)
		}
		onTopic[c.OperationID]++
	}
	noResult, resultTwice := 0, 0
	for _, op := range claims {
		switch n := onTopic[op]; {
		case n == 0:
			noResult++
		case n > 1:
			resultTwice++
		}
	}

	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("%d commands answered (%d claims, %d requests sent again after an unknown outcome); before the faults: longest time between 202s %s, "+
		"from claim to completion %s, from completion to result published %s", answered, len(claims), retries, ms(baseline), ms(baseCompletion), ms(basePublish))
	for _, f := range faults {
		t.Logf("%s: node %d killed; a new leader in %s; start-node took %s; three in-sync replicas again %s after the kill; "+
			"meanwhile: longest time without a 202 %s, from claim to completion %s, from completion to result published %s",
			f.what, f.node, ms(f.newLeader), ms(f.restart), ms(f.back), ms(f.longestGap), ms(f.completion), ms(f.publish))
	}
	t.Logf("commands lost %d, applied twice %d, not applied %d; result events missing %d, published more than once %d",
		lost, doubled, missing, noResult, resultTwice)
	mustEqual(t, "commands lost", lost, 0)
	mustEqual(t, "commands applied twice", doubled, 0)
	mustEqual(t, "claims not applied", missing, 0)
	mustEqual(t, "completed commands without a result event", noResult, 0)
}
