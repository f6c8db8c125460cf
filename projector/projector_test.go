package projector

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// effects is a module whose applier appends a row per application, with
// nothing to deduplicate it but the projector: a second application shows
// as a second row.
func effects(t *testing.T) (*Projector, *sqldb.DB) {
	t.Helper()
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	if _, err := db.Pool.Exec(context.Background(), `CREATE TABLE effects (operation_id TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	reg := idemgate.MustRegistry(idemgate.Module{Name: "effects", Operations: []idemgate.Operation{{
		Name: "effects.add", Path: "/v1/effects",
		Validate: func(b []byte) (json.RawMessage, error) { return b, nil },
		Apply: idemgate.TxApplierFunc(func(ctx context.Context, tx pgx.Tx, cmd idemgate.Command) (idemgate.Response, error) {
			if _, err := tx.Exec(ctx, `INSERT INTO effects (operation_id) VALUES ($1)`, cmd.OperationID); err != nil {
				return idemgate.Response{}, fmt.Errorf("add effect: %w", err)
			}
			return idemgate.Response{Status: 201, ContentType: "application/json", Body: []byte(`{"ok":true}`)}, nil
		}),
	}}})
	p, err := New(Config{Store: store.New(db, 0), Registry: reg, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return p, db
}

// claimAndRecord claims a command as the API would and returns its event.
func claimAndRecord(t *testing.T, db *sqldb.DB, op string) *kgo.Record {
	t.Helper()
	cmd := idemgate.Command{OperationID: uuid.NewString(), Tenant: "tenant-a", Operation: op, IdempotencyKey: "k-" + uuid.NewString(),
		Request: json.RawMessage(`{}`), AcceptedAt: time.Now()}
	claims, err := store.New(db, 0).ClaimKeys(context.Background(), []idemgate.ClaimRequest{{Tenant: cmd.Tenant, Operation: op,
		Key: cmd.IdempotencyKey, Fingerprint: []byte{1}, Request: cmd.Request, Retention: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	cmd.OperationID = claims[0].OperationID
	env, err := events.CommandAccepted(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return env.Record("commands", events.IdentityKey(cmd.Tenant, op, cmd.IdempotencyKey))
}

// TestRedeliveryAppliesOnce delivers one event three times: the effect
// happens once, every delivery succeeds (none is dead-lettered), and the
// response is recorded once.
func TestRedeliveryAppliesOnce(t *testing.T) {
	p, db := effects(t)
	rec := claimAndRecord(t, db, "effects.add")
	for i := range 3 {
		if err := p.Handle(context.Background(), rec); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	var n, outbox int
	if err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM effects), (SELECT count(*) FROM outbox)`).Scan(&n, &outbox); err != nil {
		t.Fatal(err)
	}
	if n != 1 || outbox != 1 {
		t.Fatalf("effects %d, outbox rows (completions) %d; want 1, 1", n, outbox)
	}
}

// TestUnknownOperationIsPermanent: an event of an operation no longer
// registered can never be applied; it must go to the dead-letter path,
// not be retried for ever.
func TestUnknownOperationIsPermanent(t *testing.T) {
	p, db := effects(t)
	err := p.Handle(context.Background(), claimAndRecord(t, db, "gone.create"))
	if err == nil || !IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent error", err)
	}
}

// TestHandleBatch applies a run of records in one transaction: each
// command once, a record repeated in the run or delivered again later no
// second time, and a run holding a poison record refused whole (the
// consumer then goes one record at a time).
func TestHandleBatch(t *testing.T) {
	p, db := effects(t)
	ctx := context.Background()
	recs := []*kgo.Record{claimAndRecord(t, db, "effects.add"), claimAndRecord(t, db, "effects.add"), claimAndRecord(t, db, "effects.add")}
	run := append(append([]*kgo.Record{}, recs...), recs[1]) // recs[1] twice in the run
	if err := p.HandleBatch(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := p.HandleBatch(ctx, recs); err != nil { // redelivered
		t.Fatal(err)
	}
	count := func(sql string) int {
		var n int
		if err := db.Pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if e, o := count(`SELECT count(*) FROM effects`), count(`SELECT count(*) FROM outbox`); e != 3 || o != 3 {
		t.Fatalf("effects %d, outbox rows (completions) %d; want 3 each", e, o)
	}
	poison := &kgo.Record{Value: []byte("not an event")}
	if err := p.HandleBatch(ctx, []*kgo.Record{claimAndRecord(t, db, "effects.add"), poison}); err == nil || !IsPermanent(err) {
		t.Fatalf("a run with a poison record: err = %v, want a permanent error", err)
	}
}

// TestApplierErrorIsReturnedAndNothingRecorded: when the applier fails
// (here its table is missing, an SQL error of the data's kind), Handle
// returns the error as permanent and records nothing: no outbox row, the
// claim not completed, the event not marked processed, so a later
// delivery, once the cause is gone, still applies it.
func TestApplierErrorIsReturnedAndNothingRecorded(t *testing.T) {
	ctx := context.Background()
	p, db := effects(t)
	rec := claimAndRecord(t, db, "effects.add")
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE effects RENAME TO effects_away`); err != nil {
		t.Fatal(err)
	}
	err := p.Handle(ctx, rec)
	if err == nil || !IsPermanent(err) {
		t.Fatalf("err = %v, want the applier's permanent error", err)
	}
	// A claim is completed when its outbox row exists.
	var outbox, processed int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM processed_events)`).Scan(&outbox, &processed); err != nil {
		t.Fatal(err)
	}
	if outbox != 0 || processed != 0 {
		t.Fatalf("after a failed application: outbox rows %d, processed events %d; want 0, 0 (the claim not completed)", outbox, processed)
	}
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE effects_away RENAME TO effects`); err != nil {
		t.Fatal(err)
	}
	if err := p.Handle(ctx, rec); err != nil {
		t.Fatalf("redelivery after the cause is gone: %v", err)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM effects), (SELECT count(*) FROM outbox)`).Scan(&n, &outbox); err != nil {
		t.Fatal(err)
	}
	if n != 1 || outbox != 1 {
		t.Fatalf("after the redelivery: effects %d, outbox rows %d; want 1, 1 (applied once, completed)", n, outbox)
	}
}

// TestCompletionCountedOnce delivers one event three times: the outcome
// is recorded by the first delivery only, so the completed-commands
// counter reads 1 (redeliveries are not completions).
func TestCompletionCountedOnce(t *testing.T) {
	base, db := effects(t)
	reg := prometheus.NewRegistry()
	p, err := New(Config{Store: base.cfg.Store, Registry: base.cfg.Registry, Name: base.cfg.Name, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rec := claimAndRecord(t, db, "effects.add")
	for i := range 3 {
		if err := p.Handle(context.Background(), rec); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var completed, observed float64
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "idemgate_commands_completed_total":
				completed += m.GetCounter().GetValue()
			case "idemgate_completion_latency_seconds":
				observed += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if completed != 1 || observed != 1 {
		t.Fatalf("completed commands %v, latency observations %v; want 1 and 1", completed, observed)
	}
}
