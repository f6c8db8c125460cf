package hostile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/testenv"
)

// TestEventIDsAndDedupWindow (finding 10, CloudEvents ids; dedup records
// pruned by the janitor). Commands are emitted, some re-emitted by the
// sweeper, projected, their results published, some published twice.
// Across the commands and results topics each distinct event has its own
// ce_id, and each copy of one event keeps it. Then the janitor of a serve
// (IDEMGATE_DEDUP_WINDOW=48h) prunes the dedup records made older than
// the window, and every command event delivered once more has no effect.
func TestEventIDsAndDedupWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	t.Parallel()
	s := newStack(t, "IDEMGATE_LEASE", "10s", // only the claims the test expires are re-emitted
		"IDEMGATE_SWEEP_INTERVAL", "200ms")
	a := s.serve("IDEMGATE_JANITOR_INTERVAL", "300ms", "IDEMGATE_DEDUP_WINDOW", "48h")
	const n = 20
	locs := load(t, a, "ce", n, 4, false)
	s.waitCount(0, 30*time.Second, `SELECT count(*) FROM command_pending`)

	// Five commands look unacknowledged: the sweeper emits them again.
	reemit := []string{opID(locs[0]), opID(locs[1]), opID(locs[2]), opID(locs[3]), opID(locs[4])}
	s.exec(`INSERT INTO command_pending (operation_id, lease_until) SELECT unnest($1::UUID[]), now() - INTERVAL '1 second'`, reemit)
	s.waitCount(0, 30*time.Second, `SELECT count(*) FROM command_pending`)

	s.Project()
	s.Relay()
	s.waitCount(n, 60*time.Second, `SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL`)
	// Five outcomes look unsent: the relay publishes them again.
	s.exec(`UPDATE outbox SET sent_at = NULL WHERE operation_id = ANY($1::UUID[])`, reemit)
	s.waitCount(n, 60*time.Second, `SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL`)

	cmds := readTopic(t, s.Brokers, s.Prefix+".commands")
	results := readTopic(t, s.Brokers, s.Prefix+".results")
	if len(cmds) != n+len(reemit) || len(results) != n+len(reemit) {
		t.Fatalf("%d command and %d result records, want %d of each", len(cmds), len(results), n+len(reemit))
	}
	byID := map[string][]events.Envelope{}
	for _, rec := range append(append([]*kgo.Record{}, cmds...), results...) {
		e, err := events.Decode(rec)
		if err != nil {
			t.Fatalf("%s@%d: %v", rec.Topic, rec.Offset, err)
		}
		byID[e.ID] = append(byID[e.ID], e)
	}
	completedID := regexp.MustCompile(`^[0-9a-f-]{36}:completed:[0-9]{16}$`)
	copies := 0
	for id, es := range byID {
		for _, e := range es[1:] {
			if e.Type != es[0].Type || !bytes.Equal(e.Data, es[0].Data) {
				t.Errorf("ce_id %s names two different events: %s %s and %s %s", id, es[0].Type, es[0].Data, e.Type, e.Data)
			}
		}
		copies += len(es) - 1
		var body struct {
			OperationID string `json:"operation_id"`
		}
		_ = json.Unmarshal(es[0].Data, &body)
		switch es[0].Type {
		case events.TypeCommandAccepted:
			if id != body.OperationID {
				t.Errorf("command event id %s for operation %s", id, body.OperationID)
			}
		case events.TypeCommandCompleted:
			if !completedID.MatchString(id) || id[:36] != body.OperationID {
				t.Errorf("result event id %s for operation %s, want <operation id>:completed:<micros>", id, body.OperationID)
			}
		}
	}
	if len(byID) != 2*n || copies != 2*len(reemit) {
		t.Errorf("%d distinct ce_ids over %d records (%d copies); want %d distinct, %d copies",
			len(byID), len(cmds)+len(results), copies, 2*n, 2*len(reemit))
	}
	t.Logf("%d command records (%d re-emitted by the sweeper) and %d result records (%d published twice): %d distinct ce_ids, every copy with its original's",
		len(cmds), len(reemit), len(results), len(reemit), len(byID))

	// The dedup window: ten records made three days old, whose keys are
	// past their retention too, are pruned by the janitor once it has
	// deleted their claims; the others are kept (a record outlives the
	// window as long as its claim exists).
	s.exec(`UPDATE processed_events SET processed_at = now() - INTERVAL '3 days'
WHERE event_id IN (SELECT event_id FROM processed_events ORDER BY event_id LIMIT 10)`)
	s.exec(`UPDATE idempotency_claims SET expires_at = now() - INTERVAL '1 hour'
WHERE operation_id::TEXT IN (SELECT event_id FROM processed_events WHERE processed_at < now() - INTERVAL '2 days')`)
	pruneWait := s.waitCount(n-10, 30*time.Second, `SELECT count(*) FROM processed_events`)
	snapshot := s.outcomes()
	// Every command event once more: nothing happens.
	produceCopies(t, s.Brokers, cmds)
	s.waitConsumed(s.Prefix + ".commands")
	if got := s.outcomes(); got != snapshot {
		t.Fatalf("the redelivered events changed the outcomes:\n%s\nwas\n%s", got, snapshot)
	}
	if got := s.Count(`SELECT count(*) FROM payments`); got != n {
		t.Fatalf("payments = %d after the redeliveries, want %d", got, n)
	}
	if got := s.Count(`SELECT count(*) FROM processed_events`); got != n-10 {
		t.Fatalf("processed_events = %d after the redeliveries, want %d", got, n-10)
	}
	t.Logf("janitor pruned the 10 dedup records past the 48h window within %v; %d command events delivered again: no payment, outcome or dedup record added",
		ms(pruneWait), len(cmds))
}

// opID is the operation id of a Location.
func opID(location string) string { return location[len("/v1/operations/"):] }

// exec runs a statement on the stack's database.
func (s *stack) exec(sql string, args ...any) {
	s.T.Helper()
	if _, err := s.DB.Pool.Exec(context.Background(), sql, args...); err != nil {
		s.T.Fatalf("%s: %v", sql, err)
	}
}

// outcomes renders every recorded outcome, to compare before and after.
func (s *stack) outcomes() string {
	s.T.Helper()
	var out bytes.Buffer
	err := s.DB.InTx(context.Background(), func(tx pgx.Tx) error {
		out.Reset()
		rows, err := tx.Query(context.Background(), `SELECT operation_id::TEXT, status, body FROM outbox ORDER BY operation_id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var status int
			var body []byte
			if err := rows.Scan(&id, &status, &body); err != nil {
				return err
			}
			fmt.Fprintf(&out, "%s %d %s\n", id, status, body)
		}
		return rows.Err()
	})
	if err != nil {
		s.T.Fatal(err)
	}
	return out.String()
}

// waitConsumed waits until the projectors' group has committed the end of
// every partition of topic.
func (s *stack) waitConsumed(topic string) {
	s.T.Helper()
	cl, err := kgo.NewClient(testenv.KafkaOptions(s.T, s.Brokers)...)
	if err != nil {
		s.T.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	testenv.Eventually(s.T, 60*time.Second, fmt.Sprintf("group %s consumed %s to its end", s.Group, topic), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ends, err1 := adm.ListEndOffsets(ctx, topic)
		committed, err2 := adm.FetchOffsets(ctx, s.Group)
		cancel()
		done := err1 == nil && err2 == nil
		if done {
			ends.Each(func(o kadm.ListedOffset) {
				c, ok := committed.Lookup(topic, o.Partition)
				done = done && (o.Offset == 0 || ok && c.At >= o.Offset)
			})
		}
		return testenv.Check(done, "not yet (%v, %v)", err1, err2)
	})
}

// readTopic reads every record of topic, up to its end offsets now.
func readTopic(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(testenv.KafkaOptions(t, brokers), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var out []*kgo.Record
	for int64(len(out)) < want {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), want, topic)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// produceCopies produces an exact copy (key, value, headers) of each
// record to its topic, as a redelivery would bring it.
func produceCopies(t *testing.T, brokers []string, recs []*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(testenv.KafkaOptions(t, brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	copies := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		copies = append(copies, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, copies...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
