package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/testenv"
)

// These tests run the runner against kfake, franz-go's in-process Kafka:
// the real protocol, groups and offset commits.

const topic = "t"

// newCluster is a kfake cluster of t's own whose one-partition topic
// holds values, produced one request each; it returns its brokers.
func newCluster(t *testing.T, values ...string) []string {
	t.Helper()
	return seedCluster(t, false, values...)
}

// seedCluster is newCluster, with the values produced in one request
// when oneBatch is set.
func seedCluster(t *testing.T, oneBatch bool, values ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic)}
	if oneBatch {
		opts = append(opts, kgo.ProducerLinger(time.Second))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Value: []byte(v)}
	}
	produce := func(recs ...*kgo.Record) {
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if oneBatch {
		produce(recs...)
	} else {
		for _, r := range recs {
			produce(r)
		}
	}
	return c.ListenAddrs()
}

func committed(t *testing.T, brokers []string, group string) int64 {
	t.Helper()
	at, _, err := committedOffset(brokers, group)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// mustCommit fails t unless the group's committed offset is want.
func mustCommit(t *testing.T, brokers []string, group string, want int64) {
	t.Helper()
	if got := committed(t, brokers, group); got != want {
		t.Fatalf("committed offset = %d, want %d", got, want)
	}
}

// committedOffset is the group's committed offset on the topic's
// partition 0; ok is false (and at 0) while it has committed none there.
func committedOffset(brokers []string, group string) (at int64, ok bool, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, false, err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		return 0, false, err
	}
	o, ok := offs.Lookup(topic, 0)
	if !ok {
		return 0, false, nil
	}
	return o.At, true, nil
}

var errPermanent = errors.New("permanent")

// isPermanent is the tests' IsPermanent: errPermanent is permanent.
func isPermanent(err error) bool { return errors.Is(err, errPermanent) }

// seed is the client options of a runner on brokers.
func seed(brokers []string) []kgo.Opt { return []kgo.Opt{kgo.SeedBrokers(brokers...)} }

// noPoison is the OnPoison of a test in which no record is poison.
func noPoison(t *testing.T) func(context.Context, *kgo.Record, error) error {
	return func(context.Context, *kgo.Record, error) error { t.Error("no record is poison here"); return nil }
}

// runUntil runs a runner until done reports true (or 20 s pass), then
// stops it and waits for Run to return.
func runUntil(t *testing.T, cfg Config, h Handler, done func() bool) {
	t.Helper()
	r, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	go func() { ended <- r.Run(ctx) }()
	if err := testenv.Poll(ctx, 20*time.Second, func() error { return testenv.Check(done(), "not done") }); err != nil {
		cancel()
		t.Fatalf("condition not reached: %v", err)
	}
	cancel()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestRunnerRetriesTransientErrorsInOrder(t *testing.T) {
	brokers := newCluster(t, "a", "b", "c", "d")
	var mu sync.Mutex
	var seen []string
	failures := 0
	h := func(_ context.Context, rec *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		// More transient failures than MaxAttempts: a transient error is
		// retried for ever, never disposed of as poison.
		if string(rec.Value) == "b" && failures < 4 {
			failures++
			return errors.New("database unreachable")
		}
		seen = append(seen, string(rec.Value))
		return nil
	}
	cfg := Config{ClientOptions: seed(brokers), Group: "g1", Topics: []string{topic}, MaxAttempts: 2,
		IsPermanent: isPermanent, OnPoison: noPoison(t)}
	runUntil(t, cfg, h, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 4 })
	if got := fmt.Sprint(seen); got != "[a b c d]" || failures != 4 {
		t.Fatalf("seen %s after %d failures; want [a b c d] after 4", got, failures)
	}
	mustCommit(t, brokers, "g1", 4)
}

func TestRunnerDisposesOfPoisonAndMovesOn(t *testing.T) {
	brokers := newCluster(t, "ok1", "poison", "ok2")
	var mu sync.Mutex
	attempts := 0
	var poisoned, seen []string
	h := func(_ context.Context, rec *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if string(rec.Value) == "poison" {
			attempts++
			return errPermanent
		}
		seen = append(seen, string(rec.Value))
		return nil
	}
	cfg := Config{ClientOptions: seed(brokers), Group: "g2", Topics: []string{topic},
		MaxAttempts: 3, IsPermanent: isPermanent,
		OnPoison: func(_ context.Context, rec *kgo.Record, cause error) error {
			mu.Lock()
			defer mu.Unlock()
			poisoned = append(poisoned, string(rec.Value)+": "+cause.Error())
			return nil
		}}
	runUntil(t, cfg, h, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 2 })
	if attempts != 3 || fmt.Sprint(poisoned) != "[poison: permanent]" || fmt.Sprint(seen) != "[ok1 ok2]" {
		t.Fatalf("attempts %d, poisoned %v, seen %v", attempts, poisoned, seen)
	}
	mustCommit(t, brokers, "g2", 3)
}

// TestRunnerShutdownFinishesTheRecordInHand cancels the runner while a
// record is being handled: the handler is told (its context ends) but
// may finish its attempt; the record's offset is committed before Run
// returns.
func TestRunnerShutdownFinishesTheRecordInHand(t *testing.T) {
	brokers := newCluster(t, "slow")
	started := make(chan struct{})
	var told bool
	h := func(ctx context.Context, _ *kgo.Record) error {
		close(started)
		select {
		case <-ctx.Done():
			told = true
		case <-time.After(20 * time.Second):
		}
		return nil // the attempt in hand completes
	}
	r, err := New(Config{ClientOptions: seed(brokers), Group: "g3", Topics: []string{topic},
		OnPoison: func(context.Context, *kgo.Record, error) error { return nil }}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	go func() { ended <- r.Run(ctx) }()
	<-started
	cancel() // SIGTERM while the record is in hand
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	if !told {
		t.Fatal("the handler's context did not end at shutdown")
	}
	mustCommit(t, brokers, "g3", 1)
}

// TestRunnerCommitsOnlyAfterTheHandler holds a handler in the middle of its
// record: until it returns, the group's committed offset must not cover
// the record (a crash then would lose it), and once it returns it must.
func TestRunnerCommitsOnlyAfterTheHandler(t *testing.T) {
	brokers := newCluster(t, "first", "held")
	started := make(chan struct{})
	release := make(chan struct{})
	h := func(_ context.Context, rec *kgo.Record) error {
		if string(rec.Value) == "held" {
			close(started)
			<-release
		}
		return nil
	}
	r, err := New(Config{ClientOptions: seed(brokers), Group: "g4", Topics: []string{topic},
		OnPoison: func(context.Context, *kgo.Record, error) error { return nil }}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan error, 1)
	go func() { ended <- r.Run(ctx) }()
	<-started
	for range 10 {
		if got := committed(t, brokers, "g4"); got > 1 {
			close(release)
			t.Fatalf("committed offset %d while the handler of offset 1 is still running", got)
		}
		// Not a wait: it samples, over a few of the runner's 200 ms commit
		// intervals, that no commit covers the held record (an absence
		// has no event to wait for).
		time.Sleep(50 * time.Millisecond)
	}
	close(release)
	testenv.Eventually(t, 20*time.Second, "offset 2 committed after the handler's return", func() error {
		got := committed(t, brokers, "g4")
		return testenv.Check(got == 2, "committed offset %d", got)
	})
	cancel()
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
}

// TestRebalanceDuringAnOutage: one member retries a partition's record for
// ever (a database outage); a second member joins. The rebalance must not
// wait for the outage to end: the newcomer gets partitions and processes
// their records while the first member is still failing.
func TestRebalanceDuringAnOutage(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "t4"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("t4"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for p := range int32(4) {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Partition: p, Value: []byte(fmt.Sprint(p))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	outage := errors.New("database unreachable")
	var mu sync.Mutex
	doneBy := map[string]int{}
	failedOn := map[int32]bool{} // the partitions whose record has failed
	member := func(name string, failing bool) (context.CancelFunc, chan error) {
		h := func(ctx context.Context, rec *kgo.Record) error {
			if failing {
				mu.Lock()
				failedOn[rec.Partition] = true
				mu.Unlock()
				return outage
			}
			mu.Lock()
			doneBy[name]++
			mu.Unlock()
			return nil
		}
		r, err := New(Config{ClientOptions: seed(brokers), Group: "g5", Topics: []string{"t4"}, OnPoison: noPoison(t)}, h)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ended := make(chan error, 1)
		go func() { ended <- r.Run(ctx) }()
		return cancel, ended
	}
	stopA, endedA := member("a", true)
	testenv.Eventually(t, 30*time.Second, "a owns all four partitions and keeps failing", func() error {
		mu.Lock()
		defer mu.Unlock()
		return testenv.Check(len(failedOn) == 4, "a failed on partitions %v", failedOn)
	})
	stopB, endedB := member("b", false)
	testenv.Eventually(t, 30*time.Second, "the second member processes records during the outage (the rebalance must not wait for it)", func() error {
		mu.Lock()
		defer mu.Unlock()
		return testenv.Check(doneBy["b"] > 0, "b processed nothing")
	})
	stopB()
	stopA()
	for _, e := range []chan error{endedA, endedB} {
		select {
		case err := <-e:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a member did not stop within 30s")
		}
	}
}
