package netfault

import (
	"context"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/testenv"
)

// startProxiedKafka starts a real broker of t's own (scripts/kafka.sh)
// behind a NetFault: the broker listens on one port and advertises the
// proxy's (KAFKA_ADVERTISED_PORTS), so that every client, which follows
// the advertised address after the bootstrap, goes through the proxy. It
// is stopped when t ends.
//
// The JVM binds its own ports, which cannot be held for it
// (testenv.Port): it starts on ports in 40000-48999, below the kernel's
// ephemeral range, where no outgoing connection takes one; if another
// listener has one, the start fails saying so and it starts again on
// others.
func startProxiedKafka(t *testing.T) *testenv.NetFault {
	t.Helper()
	script, err := filepath.Abs("../scripts/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var vars []string
	t.Cleanup(func() { // before the run dir is removed
		if vars == nil {
			return
		}
		cmd := exec.Command(script, "stop")
		cmd.Env = vars
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("kafka.sh stop: %v\n%s", err, out)
		}
	})
	for attempt := 1; ; attempt++ {
		port := 40000 + mathrand.IntN(4500)*2
		f := testenv.NewNetFault(t, "tcp", "127.0.0.1:"+strconv.Itoa(port))
		_, advertised, _ := net.SplitHostPort(f.Addr())
		vars = append(os.Environ(),
			"KAFKA_RUN_DIR="+filepath.Join(dir, "kafka"),
			"KAFKA_PORT="+strconv.Itoa(port),
			"KAFKA_CONTROLLER_PORT="+strconv.Itoa(port+1),
			"KAFKA_ADVERTISED_PORTS="+advertised,
			"KAFKA_HEAP_OPTS=-Xmx256m -Xms256m",
		)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, script, "start")
		cmd.Env = vars
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		out, err := cmd.Output()
		cancel()
		if err == nil && strings.TrimSpace(string(out)) == "KAFKA_BROKERS="+f.Addr() {
			t.Logf("Kafka listening on %d, advertising %s (the proxy), started in %v", port, f.Addr(), ms(time.Since(start)))
			return f
		}
		if !strings.Contains(stderr.String(), "already in use") || attempt == 5 {
			t.Fatalf("scripts/kafka.sh start (Java and Maven are needed): %v\n%s%s", err, out, stderr.String())
		}
		t.Logf("port %d or %d is another listener's; starting on others", port, port+1)
		f.Close()
	}
}

// TestKafkaFaults: serve, project and relay reach a real broker through
// a NetFault (the broker advertises one address, so a fault cuts every
// role from Kafka, the projector among them). First a 10 s partition,
// then 10 s of connections hanging half-open (those stay hung after
// healing: only franz-go's own timeouts can drop them). Through each,
// serve keeps accepting (claims are durable in the database) and no role
// exits; after healing, every accepted command is applied exactly once
// and its result event is on the results topic.
func TestKafkaFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary and a broker")
	}
	f := startProxiedKafka(t)
	db := env.NewDatabase(t, migrations(t)...)
	s := testenv.NewStack(t, db, []string{f.Addr()}, "IDEMGATE_LEASE", "2s", "IDEMGATE_SWEEP_INTERVAL", "500ms")
	a := s.Serve()
	procs := []*testenv.Proc{a.Proc, s.Project(), s.Relay()}
	t.Cleanup(func() {
		if t.Failed() {
			diagnose(t, s, procs...)
		}
	})
	kafkaFault(t, s, a, procs, f, "partition 10s roles<->Kafka", "p-", f.Partition)
	kafkaFault(t, s, a, procs, f, "half-open 10s roles<->Kafka", "h-", f.HalfOpen)
}

func kafkaFault(t *testing.T, s *testenv.Stack, a *testenv.API, procs []*testenv.Proc, f *testenv.NetFault, name, prefix string, fault func()) {
	t.Helper()
	running := func(when string) {
		t.Helper()
		for _, p := range procs {
			if p.Exited() {
				t.Fatalf("%s exited %s: %v", p.Name, when, p.State())
			}
		}
	}
	l := newLedger(t, a.Base, prefix)
	stop := l.loadBeforeFault(4)
	during := l.window()
	faultAt := time.Now()
	fault()
	for time.Since(faultAt) < 10*time.Second { // the fault's length: the clients' load goes on meanwhile
		running("during the fault")
		<-time.After(100 * time.Millisecond) // how often to look, not a wait for an event
	}
	f.Heal()
	healedAt := time.Now()
	answers := during()
	<-time.After(3 * time.Second) // the load after healing: how long it runs, not a wait
	stop()
	if answers[http.StatusAccepted] == 0 || answers[http.StatusServiceUnavailable] > 0 {
		t.Errorf("answers during the fault %v: want serve to keep accepting (202), never 503", answers)
	}

	l.settle(180 * time.Second)
	settled := time.Since(healedAt)
	lost, doubled := l.check(s)
	published, took := waitResults(t, s, l.prefix)
	running("after the fault")
	t.Logf("FIGURES %s: %d commands; answers during the fault %v, slowest answer %v, longest time without a 202 %v; "+
		"every command completed %v after healing, its result event published %v later; lost %d, doubled %d, results published %d/%d",
		name, len(l.keys), answers, ms(l.slowest), ms(l.maxGap), ms(settled), ms(took), lost, doubled, published, len(l.keys))
}

// waitResults waits until every command of the keys with prefix has a
// result event on the results topic; it returns how many and how long.
func waitResults(t *testing.T, s *testenv.Stack, prefix string) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	want := map[string]bool{}
	rows, err := s.DB.Pool.Query(context.Background(), `SELECT operation_id::text FROM idempotency_claims WHERE idem_key LIKE $1`, prefix+"%")
	if err != nil {
		t.Fatal(err)
	}
	ops, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		want[op] = true
	}
	opts, err := events.KafkaConfig{}.ClientOptions(s.Brokers)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(events.TopicsWithPrefix(s.Prefix).Results),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]bool{}
	testenv.Eventually(t, 120*time.Second, "every command's result event is on the results topic", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "ce_id" {
					op, _, _ := strings.Cut(string(h.Value), ":")
					seen[op] = true
				}
			}
		})
		missing := 0
		for op := range want {
			if !seen[op] {
				missing++
			}
		}
		return testenv.Check(missing == 0, "%d of %d result events missing", missing, len(want))
	})
	return len(want), time.Since(start)
}
