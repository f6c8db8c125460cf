package projector

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// publishing is the effects projector of effects(t) publishing its
// results to the "results" topic of a kfake cluster of the test's own,
// with faults, and a relay of that cluster with grace.
func publishing(t *testing.T, faults *fault.Injector, grace time.Duration) (*Projector, *Relay, *sqldb.DB, []string) {
	t.Helper()
	base, db := effects(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "results", "dead"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(testenv.KafkaOptions(t, c.ListenAddrs())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	cfg := base.cfg
	cfg.Producer, cfg.ResultsTopic, cfg.DeadLetterTopic, cfg.Faults = events.NewProducer(cl), "results", "dead", faults
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := NewRelay(RelayConfig{Store: cfg.Store, Producer: events.NewProducer(cl), Topic: "results", Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	return p, relay, db, c.ListenAddrs()
}

// recorded reads the outbox: each row's result event id (the one its
// publisher gives it), and whether it is marked sent.
func recorded(t *testing.T, db *sqldb.DB) map[string]bool {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT operation_id::TEXT, created_at, sent_at IS NOT NULL FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for rows.Next() {
		var id string
		var at time.Time
		var sent bool
		if err := rows.Scan(&id, &at, &sent); err != nil {
			t.Fatal(err)
		}
		out[events.CompletedID(id, at)] = sent
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// resultEvents reads the results topic until it holds want records
// (and a little longer, to see one too many), and returns their event
// ids with how many times each came.
func resultEvents(t *testing.T, brokers []string, want int) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("results"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ids := map[string]int{}
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for n < want && ctx.Err() == nil {
		for _, r := range cl.PollFetches(ctx).Records() {
			env, err := events.Decode(r)
			if err != nil || env.Type != events.TypeCommandCompleted {
				t.Fatalf("a record of type %q on the results topic (%v)", env.Type, err)
			}
			ids[env.ID]++
			n++
		}
	}
	if n < want {
		t.Fatalf("%d result events on the topic after 10 s, want %d: %v", n, want, ids)
	}
	// One more fetch, short: a record beyond the ones wanted would be a
	// duplicate publish.
	extra, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	for _, r := range cl.PollFetches(extra).Records() {
		env, _ := events.Decode(r)
		ids[env.ID]++
	}
	return ids
}

// TestProjectorPublishesItsResults: a batch applied by a projector with
// a results topic is published by the projector itself, right after its
// commit, each result once under the id the relay would give it, and
// marked sent; the relay, even with no grace, then has nothing to
// publish.
func TestProjectorPublishesItsResults(t *testing.T) {
	ctx := context.Background()
	p, relay, db, brokers := publishing(t, nil, 0)
	recs := []*kgo.Record{claimAndRecord(t, db, "effects.add"), claimAndRecord(t, db, "effects.add"), claimAndRecord(t, db, "effects.add")}
	if err := p.HandleBatch(ctx, recs); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the projector marks its published results sent", func() error {
		out := recorded(t, db)
		sent := 0
		for _, s := range out {
			if s {
				sent++
			}
		}
		return testenv.Check(len(out) == 3 && sent == 3, "%d of %d outbox rows sent", sent, len(out))
	})
	if n, err := relay.RelayOnce(ctx); err != nil || n != 0 {
		t.Fatalf("the relay published %d (%v) after the projector had published all, want 0", n, err)
	}
	got := resultEvents(t, brokers, 3)
	for id := range recorded(t, db) {
		if got[id] != 1 {
			t.Errorf("result event %s published %d times, want once (topic: %v)", id, got[id], got)
		}
	}
	if len(got) != 3 {
		t.Errorf("result events %v, want the 3 of the outbox", got)
	}
}

// TestRelayPublishesAfterTheGraceWhatAProjectorDiedBeforePublishing: the
// projector dies (the fault point projector.after-commit, which it passes
// after its commit and before its publish) with a result recorded and
// not published. The relay leaves it alone during its grace (the
// projector would have published it), then publishes it, under the id
// the projector would have given it, and marks it sent.
func TestRelayPublishesAfterTheGraceWhatAProjectorDiedBeforePublishing(t *testing.T) {
	ctx := context.Background()
	const grace = time.Second
	died := make(chan string, 1)
	faults := fault.WithDeath(map[string]float64{fault.AfterProjectorTx: 1}, func(point string) {
		died <- point
		runtime.Goexit() // the handler's goroutine ends there, as the process would
	})
	p, relay, db, brokers := publishing(t, faults, grace)
	rec := claimAndRecord(t, db, "effects.add")
	handled := make(chan error, 1)
	go func() { handled <- p.HandleBatch(ctx, []*kgo.Record{rec}) }()
	if point := <-died; point != fault.AfterProjectorTx {
		t.Fatalf("died at %s", point)
	}
	select {
	case err := <-handled:
		t.Fatalf("the handler returned (%v) after its death", err)
	default:
	}
	out := recorded(t, db)
	if len(out) != 1 {
		t.Fatalf("%d outbox rows after the commit, want 1", len(out))
	}
	var id string
	for k, sent := range out {
		if sent {
			t.Fatal("the row is marked sent, though nobody published it")
		}
		id = k
	}
	// Within the grace the relay leaves the row to the projector.
	var before time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT created_at + $1::INTERVAL FROM outbox`, grace).Scan(&before); err != nil {
		t.Fatal(err)
	}
	n, err := relay.RelayOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var now time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if n != 0 && now.Before(before) {
		t.Fatalf("the relay published %d within its grace, want 0", n)
	}
	if n == 0 {
		testenv.Eventually(t, 10*grace, "the relay publishes the row after its grace", func() error {
			n, err := relay.RelayOnce(ctx)
			if err != nil {
				return err
			}
			return testenv.Check(n == 1, "published %d", n)
		})
	}
	if err := db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil || now.Before(before) {
		t.Fatalf("published before the end of the grace (%v, %v)", now, err)
	}
	if !recorded(t, db)[id] {
		t.Fatal("the row is not marked sent after the relay published it")
	}
	if got := resultEvents(t, brokers, 1); len(got) != 1 || got[id] != 1 {
		t.Fatalf("result events %v, want %s once", got, id)
	}
}

// TestRedrivenCommandGetsItsNewResultPublished: a dead-lettered command's
// 500 is published by the projector; redriven (its outbox row deleted)
// and applied again, its new result is published too, under a new id,
// and marked sent. (That the old row's mark cannot land on the new row:
// store's TestMarkSentNamesTheRecordedRow.)
func TestRedrivenCommandGetsItsNewResultPublished(t *testing.T) {
	ctx := context.Background()
	p, relay, db, brokers := publishing(t, nil, 0)
	rec := claimAndRecord(t, db, "effects.add")
	if err := p.DeadLetter(ctx, rec, errors.New("poison, for the test")); err != nil {
		t.Fatal(err)
	}
	sentOnly := func(what string) string {
		var id string
		testenv.Eventually(t, 10*time.Second, what, func() error {
			out := recorded(t, db)
			for k, sent := range out {
				id = k
				return testenv.Check(len(out) == 1 && sent, "%d rows, sent %v", len(out), sent)
			}
			return errors.New("no outbox row")
		})
		return id
	}
	first := sentOnly("the dead letter's 500 is published and marked sent")
	cmd, err := decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cfg.Store.Redrive(ctx, "test", cmd.OperationID); err != nil {
		t.Fatal(err)
	}
	if err := p.Handle(ctx, rec); err != nil {
		t.Fatal(err)
	}
	second := sentOnly("the redriven command's new result is published and marked sent")
	if second == first {
		t.Fatalf("the new result has the old one's id %s", first)
	}
	if n, err := relay.RelayOnce(ctx); err != nil || n != 0 {
		t.Fatalf("the relay published %d (%v), want 0: the projector published both", n, err)
	}
	got := resultEvents(t, brokers, 2)
	if got[first] != 1 || got[second] != 1 || len(got) != 2 {
		t.Fatalf("result events %v, want %s and %s once each", got, first, second)
	}
}
