package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// These tests hand the worker a batch of several records in one piece:
// the records are produced in ONE request, so they are one record batch
// on the broker, come back in one fetch and are taken by the worker at
// once. Each test checks that it saw the batch it meant to build.

// newClusterOneBatch is newCluster with the values produced in one
// request.
func newClusterOneBatch(t *testing.T, values ...string) []string {
	t.Helper()
	return seedCluster(t, true, values...)
}

func values(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// TestRunnerPoisonInABatchKeepsItsNeighbours: a run holding a poison record
// fails in the batch handler as a whole (one transaction: nothing of it
// is applied). The runner must then handle the run's records one at a
// time: the poison one is disposed of, and every other record of the
// run, before and behind it, is applied; only then is the offset
// committed. Counting the failed run as done would commit the offsets of
// commands never applied (lost commands).
func TestRunnerPoisonInABatchKeepsItsNeighbours(t *testing.T) {
	brokers := newClusterOneBatch(t, "ok1", "poison", "ok2", "ok3")
	var mu sync.Mutex
	var runs [][]string
	var applied, poisoned []string
	batch := func(_ context.Context, recs []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		runs = append(runs, values(recs))
		if slices.Contains(values(recs), "poison") {
			return errPermanent // the run's transaction rolls back whole
		}
		applied = append(applied, values(recs)...)
		return nil
	}
	h := func(_ context.Context, rec *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if string(rec.Value) == "poison" {
			return errPermanent
		}
		applied = append(applied, string(rec.Value))
		return nil
	}
	cfg := Config{ClientOptions: seed(brokers), Group: "gb1", Topics: []string{topic},
		BatchHandler: batch, MaxAttempts: 2, IsPermanent: isPermanent,
		OnPoison: func(_ context.Context, rec *kgo.Record, _ error) error {
			mu.Lock()
			defer mu.Unlock()
			poisoned = append(poisoned, string(rec.Value))
			return nil
		}}
	runUntilEither(t, cfg, h, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) > 0 && (len(applied) == 3 && len(poisoned) == 1 || len(runs[0]) < 4)
	}, func() bool { return committedNow(brokers, "gb1") == 4 })
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(runs) != "[[ok1 poison ok2 ok3]]" {
		t.Fatalf("runs given to the batch handler %v; want the four records in one run (the test's premise)", runs)
	}
	if fmt.Sprint(applied) != "[ok1 ok2 ok3]" || fmt.Sprint(poisoned) != "[poison]" {
		t.Fatalf("applied %v, poisoned %v; want [ok1 ok2 ok3] applied one at a time in order, [poison] disposed of", applied, poisoned)
	}
	mustCommit(t, brokers, "gb1", 4)
}

// TestRunnerFallsBackToOneAtATimeWhenABatchFails: the batch handler fails
// on every run (an error of its own, not a poison record). The runner
// must not stall the partition on it: it hands the run's records to the
// Handler one at a time, in order, and commits them.
func TestRunnerFallsBackToOneAtATimeWhenABatchFails(t *testing.T) {
	brokers := newClusterOneBatch(t, "a", "b", "c")
	var mu sync.Mutex
	var runs [][]string
	var handled []string
	batch := func(_ context.Context, recs []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		runs = append(runs, values(recs))
		return errors.New("batch statement refused")
	}
	h := func(_ context.Context, rec *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, string(rec.Value))
		return nil
	}
	cfg := Config{ClientOptions: seed(brokers), Group: "gb2", Topics: []string{topic}, BatchHandler: batch, OnPoison: noPoison(t)}
	runUntilEither(t, cfg, h, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 3 || len(runs) > 0 && len(runs[0]) < 3
	}, func() bool { return committedNow(brokers, "gb2") == 3 })
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(runs) != "[[a b c]]" {
		t.Fatalf("runs given to the batch handler %v; want [[a b c]] once (the test's premise)", runs)
	}
	if fmt.Sprint(handled) != "[a b c]" {
		t.Fatalf("handled one at a time %v, want [a b c]", handled)
	}
	mustCommit(t, brokers, "gb2", 3)
}

// TestRunnerStoppedMidBatchCommitsOnlyWhatItDid stops the runner while the
// second record of a four-record batch is in hand (its attempt is cut
// short: it returns the context's error). The group's committed offset
// must cover the first record only, and a runner started afterwards in
// the same group must be handed the other three. Committing the batch's
// last offset would skip them: three lost commands.
func TestRunnerStoppedMidBatchCommitsOnlyWhatItDid(t *testing.T) {
	brokers := newClusterOneBatch(t, "a", "b", "c", "d")
	inHand := make(chan struct{})
	var mu sync.Mutex
	var first []string
	h := func(ctx context.Context, rec *kgo.Record) error {
		if string(rec.Value) == "b" {
			close(inHand)
			<-ctx.Done() // stopped while b is in hand
			return ctx.Err()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		first = append(first, string(rec.Value))
		return nil
	}
	cfg := Config{ClientOptions: seed(brokers), Group: "gb3", Topics: []string{topic}, OnPoison: noPoison(t)}
	r, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	go func() { ended <- r.Run(ctx) }()
	select {
	case <-inHand:
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("record b not handed over within 20s")
	}
	cancel() // SIGTERM in the middle of the batch
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(first) != "[a]" {
		t.Fatalf("the first runner completed %v, want [a]", first)
	}
	if got := committed(t, brokers, "gb3"); got != 1 {
		t.Fatalf("committed offset = %d after a stop with b in hand, want 1 (a done, b c d not)", got)
	}

	// The partition's next owner is handed b, c and d.
	var next []string
	h2 := func(_ context.Context, rec *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		next = append(next, string(rec.Value))
		return nil
	}
	runUntilEither(t, cfg, h2, func() bool { mu.Lock(); defer mu.Unlock(); return len(next) == 3 }, func() bool { return committedNow(brokers, "gb3") == 4 })
	if fmt.Sprint(next) != "[b c d]" {
		t.Fatalf("the next owner handled %v, want [b c d]", next)
	}
	mustCommit(t, brokers, "gb3", 4)
}

// runUntilEither runs a runner until done or committed reports true:
// committed ends a run early when the offsets move past records never
// handled, so that the assertions, not a timeout, report it.
func runUntilEither(t *testing.T, cfg Config, h Handler, done, committed func() bool) {
	t.Helper()
	runUntil(t, cfg, h, func() bool { return done() || committed() })
}

// committedNow is committed, -1 while the group has none yet.
func committedNow(brokers []string, group string) int64 {
	at, ok, err := committedOffset(brokers, group)
	if err != nil || !ok {
		return -1
	}
	return at
}
