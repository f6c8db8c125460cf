package hostile

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/testenv"
)

// TestFileHandlesExhausted (finding 2): `idemgate dev` (its own
// PostgreSQL, its in-process Kafka) runs with a file limit of 1024. The
// API's connections are capped below the limit, but the in-process
// Kafka's are not: a flood of connections to the Kafka port takes every
// file handle, and both listeners meet EMFILE. Once the flood ends the
// same process, without a restart, serves the request that waited
var kafkaListening = regexp.MustCompile(`in-process Kafka \(kfake\) listening.*?(127\.0\.0\.1:\d+)`)

// meanwhile, accepts new Kafka connections and completes new commands.
func TestFileHandlesExhausted(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	dir := testenv.DataDir(t, "hostile-dev")
	t.Cleanup(func() { testenv.StopLeftover(t, filepath.Join(dir, "pg")) }) // before the folder is removed

	addr := heldAddr(t)
	p := testenv.StartProc(t, "dev", []string{"DATABASE_URL=", "KAFKA_BROKERS=", "IDEMGATE_MAX_CONNECTIONS=100000", "IDEMGATE_API_KEYS=key-a=tenant-a",
		"IDEMGATE_LEASE=1s", "IDEMGATE_SWEEP_INTERVAL=200ms"},
		"sh", "-c", `ulimit -n 1024 && exec "$0" "$@"`, testenv.Binary(t), "dev", "--addr", addr, "--data-dir", dir)
	a := devAPI(t, p, addr)
	a.WaitReady(a.Base, 120*time.Second)
	// The in-process Kafka is on a port of the kernel's choice; dev logs it.
	kafkaAddr := kafkaListening.FindStringSubmatch(p.WaitLog(kafkaListening, 5*time.Second))[1]
	if lim := openFilesLimit(t, p.Pid()); lim != "1024" {
		t.Fatalf("dev's file limit is %s, want 1024", lim)
	}
	capped := p.WaitLog(regexp.MustCompile(`API connections capped`), 5*time.Second)

	a.completed("warm")
	baseFDs := p.FDs()

	// The flood: connections to the in-process Kafka, held open.
	var flood []net.Conn
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	floodStart := time.Now()
	for range 1100 {
		c, err := net.DialTimeout("tcp", kafkaAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial the in-process Kafka: %v", err)
		}
		flood = append(flood, c)
	}
	kafkaEMFILE := regexp.MustCompile(`accept failed; retrying.*addr=` + regexp.QuoteMeta(kafkaAddr) + `.*too many open files`)
	p.WaitLog(kafkaEMFILE, 20*time.Second)
	peakFDs := p.FDs()

	// Clients of the API meanwhile: the handles that free up now and then
	// are taken by one or the other listener, until the API's accept
	// fails too.
	apiEMFILE := regexp.MustCompile(`accept failed; retrying.*addr=` + regexp.QuoteMeta(addr) + `.*too many open files`)
	waiting := make(chan testenv.Reply, 1)
	go func() { waiting <- a.postPayment("during-exhaustion", payment) }()
	// One more connection at each check until the listener says so.
	testenv.Eventually(t, 20*time.Second, "the API's listener meets EMFILE under the flood", func() error {
		if len(p.Log.Matching(apiEMFILE, floodStart)) > 0 {
			return nil
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial the API: %v", err)
		}
		flood = append(flood, c)
		return errors.New("no EMFILE logged yet")
	})
	// Exhausted for a while: what else in the process needs a handle (a
	// database connection, a Kafka client's) fails meanwhile. The span
	// is part of the scenario, not a wait for anything.
	time.Sleep(2 * time.Second)
	held := time.Since(floodStart)

	for _, c := range flood {
		c.Close()
	}
	flood = nil
	released := time.Now()
	var r testenv.Reply
	select {
	case r = <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatal("the request sent during the exhaustion was not answered within 30s of its end")
	}
	if r.Err != nil || r.Status != 202 {
		t.Fatalf("the request sent during the exhaustion: %v, want 202", r)
	}
	fresh := a.postPayment("after-exhaustion", payment)
	if fresh.Status != 202 {
		t.Fatalf("POST after the exhaustion: %v", fresh)
	}
	for _, loc := range []string{r.Header.Get("Location"), fresh.Header.Get("Location")} {
		if v := a.waitCompleted(loc, 60*time.Second); !strings.Contains(string(v.Body), `"status":201`) {
			t.Fatalf("%s: %s, want a 201 outcome", loc, v.Body)
		}
	}
	completed := time.Since(released)
	// The in-process Kafka still accepts connections.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).ListTopics(ctx); err != nil {
		t.Fatalf("a new client of the in-process Kafka after the exhaustion: %v", err)
	}
	if p.Exited() {
		t.Fatalf("dev exited: %v", p.State())
	}
	if panics := p.Log.Matching(regexp.MustCompile(`panic|fatal error`), time.Time{}); len(panics) > 0 {
		t.Fatalf("dev log: %s", panics[0].Text)
	}
	t.Logf("dev with nofile=1024 (%s): %d file handles at rest, %d during a flood of %d Kafka connections held %v; "+
		"EMFILE logged by both listeners (%d accept-retry lines); after the flood the commands accepted during and after it completed within %v",
		strings.TrimSpace(capped[strings.Index(capped, "msg="):]), baseFDs, peakFDs, 1100, ms(held),
		len(p.Log.Matching(regexp.MustCompile(`accept failed; retrying`), time.Time{})), ms(completed))
}

// openFilesLimit reads the soft "Max open files" of a process.
func openFilesLimit(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			return strings.Fields(line)[3]
		}
	}
	return ""
}
