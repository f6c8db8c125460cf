package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// These tests cover what the callers' own tests (command, projector,
// payments, cmd/idemgate) do not observe directly.

func newDB(t *testing.T) *sqldb.DB {
	t.Helper()
	return testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
}

// claim claims one key with the given retention and returns its command.
func claim(t *testing.T, st *store.Store, key string, retention time.Duration) idemgate.Command {
	t.Helper()
	cmd := idemgate.Command{Tenant: "tenant-a", Operation: "notes.create", IdempotencyKey: key, Request: json.RawMessage(`{}`)}
	claims, err := st.ClaimKeys(context.Background(), []idemgate.ClaimRequest{{Tenant: cmd.Tenant, Operation: cmd.Operation,
		Key: key, Fingerprint: []byte{1}, Request: cmd.Request, Retention: retention}})
	if err != nil {
		t.Fatal(err)
	}
	cmd.OperationID, cmd.AcceptedAt = claims[0].OperationID, claims[0].AcceptedAt
	return cmd
}

func complete(t *testing.T, st *store.Store, cmd idemgate.Command) store.Recorded {
	t.Helper()
	a, fresh, err := st.ApplyOnce(context.Background(), "test", cmd,
		store.Record(idemgate.Response{Status: 201, ContentType: "application/json", Body: []byte(`{}`)}), nil)
	if err != nil || !fresh || a.RecordedAt.IsZero() {
		t.Fatalf("record %s: fresh %v, recorded at %v, %v", cmd.IdempotencyKey, fresh, a.RecordedAt, err)
	}
	return store.Recorded{OperationID: cmd.OperationID, At: a.RecordedAt, SentAt: time.Now()}
}

// TestLease: a claim's lease (how long before the sweeper re-emits its
// event) is the store's, 10 s when none is given.
func TestLease(t *testing.T) {
	db := newDB(t)
	for _, tc := range []struct {
		lease time.Duration
		want  float64
	}{{0, 10}, {3 * time.Second, 3}} {
		cmd := claim(t, store.New(db, tc.lease), fmt.Sprint("k-", tc.lease), time.Hour)
		var got float64
		if err := db.Pool.QueryRow(context.Background(), `SELECT EXTRACT(EPOCH FROM lease_until - created_at)::FLOAT8
FROM idempotency_claims WHERE operation_id = $1`, cmd.OperationID).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("store.New(db, %v): lease %v s, want %v s", tc.lease, got, tc.want)
		}
	}
}

// TestMarkPublished moves an accepted claim to published and leaves a
// completed one completed.
func TestMarkPublished(t *testing.T) {
	db := newDB(t)
	st := store.New(db, 0)
	accepted, completed := claim(t, st, "k-accepted", time.Hour), claim(t, st, "k-completed", time.Hour)
	complete(t, st, completed)
	if err := st.MarkPublished(context.Background(), []string{accepted.OperationID, completed.OperationID}); err != nil {
		t.Fatal(err)
	}
	if got := states(t, db); got != "[k-accepted=published k-completed=completed]" {
		t.Fatalf("states %s", got)
	}
}

// TestDeleteExpired deletes the completed claims past their retention, and
// with them their outbox rows already published; an unpublished row stays
// for the relay, and a claim within its retention stays whole.
func TestDeleteExpired(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	st := store.New(db, 0)
	sent, unsent, kept := claim(t, st, "k-sent", time.Microsecond), claim(t, st, "k-unsent", time.Microsecond), claim(t, st, "k-kept", time.Hour)
	var recorded []store.Recorded
	for _, c := range []idemgate.Command{sent, unsent, kept} {
		recorded = append(recorded, complete(t, st, c))
	}
	if err := st.MarkSent(ctx, []store.Recorded{recorded[0], recorded[2]}); err != nil {
		t.Fatal(err)
	}
	n, err := st.DeleteExpired(ctx, 100)
	if err != nil || n != 2 {
		t.Fatalf("deleted %d claims (%v), want 2", n, err)
	}
	if got := states(t, db); got != "[k-kept=completed]" {
		t.Fatalf("claims left %s, want only k-kept", got)
	}
	var rows []string
	r, err := db.Pool.Query(ctx, `SELECT operation_id::TEXT FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var id string
		if err := r.Scan(&id); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, map[string]string{sent.OperationID: "sent", unsent.OperationID: "unsent", kept.OperationID: "kept"}[id])
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(rows)
	if fmt.Sprint(rows) != "[kept unsent]" {
		t.Fatalf("outbox rows left %v, want [kept unsent]", rows)
	}
}

// states lists the claims as key=state, by key, the state derived as the
// store derives it (none of these is quarantined): completed when an
// outbox row exists, accepted while Kafka has not acknowledged the event
// (a command_pending row), published otherwise.
func states(t *testing.T, db *sqldb.DB) string {
	t.Helper()
	var out []string
	r, err := db.Pool.Query(context.Background(), `
SELECT c.idem_key || '=' || CASE WHEN o.operation_id IS NOT NULL THEN 'completed'
    WHEN p.operation_id IS NOT NULL THEN 'accepted' ELSE 'published' END
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
LEFT JOIN command_pending p ON p.operation_id = c.operation_id
ORDER BY c.idem_key`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() {
		var s string
		if err := r.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(out)
}

// TestExpiredLeases: the sweeper takes the pending commands past their
// lease, and only those: not one within its lease, not one Kafka
// acknowledged. A pending row whose command completed anyway, or whose
// claim is gone, is deleted and not emitted. A command taken has its lease
// extended, so a second look right after finds nothing.
func TestExpiredLeases(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	st := store.New(db, time.Hour)
	due, acked, completed, gone := claim(t, st, "k-due", time.Hour), claim(t, st, "k-acked", time.Hour),
		claim(t, st, "k-completed", time.Hour), claim(t, st, "k-gone", time.Hour)
	claim(t, st, "k-fresh", time.Hour) // within its lease
	complete(t, st, completed)
	if err := st.MarkPublished(ctx, []string{acked.OperationID}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `DELETE FROM idempotency_claims WHERE operation_id = $1`, gone.OperationID); err != nil {
		t.Fatal(err)
	}
	past := []string{due.OperationID, completed.OperationID, gone.OperationID}
	if _, err := db.Pool.Exec(ctx, `UPDATE command_pending SET lease_until = now() - INTERVAL '1 second'
WHERE operation_id = ANY($1::UUID[])`, past); err != nil {
		t.Fatal(err)
	}
	cmds, taken, err := st.ExpiredLeases(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 1 || cmds[0].OperationID != due.OperationID || cmds[0].IdempotencyKey != "k-due" || string(cmds[0].Request) != "{}" {
		t.Fatalf("taken %+v, want k-due alone, whole", cmds)
	}
	if taken != 3 {
		t.Fatalf("%d pending rows taken, want 3 (k-due, k-completed, k-gone)", taken)
	}
	r, err := db.Pool.Query(ctx, `SELECT c.idem_key FROM command_pending p JOIN idempotency_claims c USING (operation_id) ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var total int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM command_pending`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pending) != "[k-due k-fresh]" || total != 2 {
		t.Fatalf("pending rows left %v (%d in all), want [k-due k-fresh]", pending, total)
	}
	if again, _, err := st.ExpiredLeases(ctx, 100); err != nil || len(again) != 0 {
		t.Fatalf("a second look took %d commands (%v), want none: the lease was extended", len(again), err)
	}
}

// TestKeyStates reads the derived state of claims in each state through
// the store's own queries (the key lookup, the look-up by operation id,
// the command view and idemgate list's filters), not a copy of their
// derivation: accepted while Kafka has not acknowledged the command's
// event (its command_pending row exists), published once it has,
// completed once its response is recorded. (TestCallVerdicts covers
// outcome_unknown.)
func TestKeyStates(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	st := store.New(db, 0)
	accepted, published, completed := claim(t, st, "k-accepted", time.Hour), claim(t, st, "k-published", time.Hour), claim(t, st, "k-completed", time.Hour)
	if err := st.MarkPublished(ctx, []string{published.OperationID, completed.OperationID}); err != nil {
		t.Fatal(err)
	}
	complete(t, st, completed)
	want := map[string]idemgate.ClaimState{"k-accepted": idemgate.ClaimAccepted, "k-published": idemgate.ClaimPublished, "k-completed": idemgate.ClaimCompleted}
	for _, cmd := range []idemgate.Command{accepted, published, completed} {
		v, found, err := st.Key(ctx, cmd.Tenant, cmd.Operation, cmd.IdempotencyKey)
		if err != nil || !found || v.State != want[cmd.IdempotencyKey] {
			t.Errorf("Key(%s): state %q (found %v, %v), want %s", cmd.IdempotencyKey, v.State, found, err, want[cmd.IdempotencyKey])
		}
		v, found, err = st.KeyByOperation(ctx, cmd.OperationID)
		if err != nil || !found || v.State != want[cmd.IdempotencyKey] {
			t.Errorf("KeyByOperation(%s): state %q (found %v, %v), want %s", cmd.IdempotencyKey, v.State, found, err, want[cmd.IdempotencyKey])
		}
		c, found, err := st.Command(ctx, cmd.Tenant, cmd.OperationID)
		if err != nil || !found || c.State != want[cmd.IdempotencyKey] {
			t.Errorf("Command(%s): state %q (found %v, %v), want %s", cmd.IdempotencyKey, c.State, found, err, want[cmd.IdempotencyKey])
		}
	}
	for filter, wantKeys := range map[idemgate.ClaimState]string{
		"":                      "[k-accepted=accepted k-published=published]", // pending, the default
		idemgate.ClaimPending:   "[k-accepted=accepted k-published=published]",
		idemgate.ClaimAccepted:  "[k-accepted=accepted]",
		idemgate.ClaimPublished: "[k-published=published]",
		idemgate.ClaimCompleted: "[k-completed=completed]",
	} {
		listed, err := st.Keys(ctx, store.KeyFilter{State: filter, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range listed {
			got = append(got, v.Key+"="+string(v.State))
		}
		sort.Strings(got)
		if fmt.Sprint(got) != wantKeys {
			t.Errorf("Keys(state %q): %v, want %s", filter, got, wantKeys)
		}
	}
	if _, err := st.Keys(ctx, store.KeyFilter{State: "stuck", Limit: 10}); err == nil {
		t.Error("Keys(state stuck): no error")
	}
}

// TestAcceptedCount: the gauges' count of the commands Kafka has not
// acknowledged, and when the oldest of them was accepted; an acknowledged
// one is not counted, with or without adoption.
func TestAcceptedCount(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	st := store.New(db, time.Hour)
	if n, oldest, err := st.Accepted(ctx); err != nil || n != 0 || !oldest.IsZero() {
		t.Fatalf("empty: %d, %v (%v), want 0 and no time", n, oldest, err)
	}
	first := claim(t, st, "k-first", time.Hour)
	acked, ackedAdopt := claim(t, st, "k-acked", time.Hour), claim(t, st, "k-acked-adopt", time.Hour)
	claim(t, st, "k-last", time.Hour)
	if err := st.MarkPublished(ctx, []string{acked.OperationID}); err != nil {
		t.Fatal(err)
	}
	if err := st.WithRegion("eu").WithAdoption().MarkPublished(ctx, []string{ackedAdopt.OperationID}); err != nil {
		t.Fatal(err)
	}
	n, oldest, err := st.Accepted(ctx)
	if err != nil || n != 2 {
		t.Fatalf("%d accepted (%v), want 2 (k-first, k-last)", n, err)
	}
	if !oldest.Equal(first.AcceptedAt) {
		t.Fatalf("oldest accepted at %v, want k-first's %v", oldest, first.AcceptedAt)
	}
}

// TestMarkSentNamesTheRecordedRow: a mark names a row by the time it was
// recorded, so that the mark of a redriven command's old outcome, late
// (its publisher was slow), does not land on the outcome recorded after
// the redrive, whose result event nobody published yet. And the relay's
// read leaves alone the outcomes younger than its grace.
func TestMarkSentNamesTheRecordedRow(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	st := store.New(db, 0)
	cmd := claim(t, st, "k-redriven", time.Hour)
	failed := idemgate.ProblemResponse(idemgate.NewProblem(500, idemgate.ProblemProcessingFailed, "Processing failed", "for the test"))
	a, fresh, err := st.ApplyOnce(ctx, "test", cmd, store.Record(failed), nil)
	if err != nil || !fresh {
		t.Fatalf("record the failure: fresh %v, %v", fresh, err)
	}
	old := store.Recorded{OperationID: cmd.OperationID, At: a.RecordedAt, SentAt: time.Now()}
	if err := st.Redrive(ctx, "test", cmd.OperationID); err != nil {
		t.Fatal(err)
	}
	fresh2 := complete(t, st, cmd)
	if !fresh2.At.After(old.At) {
		t.Fatalf("the new outcome was recorded at %v, not after the old one (%v)", fresh2.At, old.At)
	}
	if err := st.MarkSent(ctx, []store.Recorded{old}); err != nil {
		t.Fatal(err)
	}
	unsent, err := st.UnsentResponses(ctx, 10, 0)
	if err != nil || len(unsent) != 1 || unsent[0].Response.Status != 201 || !unsent[0].RecordedAt.Equal(fresh2.At) {
		t.Fatalf("unsent %+v (%v); want the new 201, unmarked by the old row's mark", unsent, err)
	}
	if young, err := st.UnsentResponses(ctx, 10, time.Hour); err != nil || len(young) != 0 {
		t.Fatalf("unsent older than an hour: %+v (%v), want none", young, err)
	}
	if err := st.MarkSent(ctx, []store.Recorded{fresh2}); err != nil {
		t.Fatal(err)
	}
	if unsent, err := st.UnsentResponses(ctx, 10, 0); err != nil || len(unsent) != 0 {
		t.Fatalf("unsent %+v (%v) after the new row's mark, want none", unsent, err)
	}
}
