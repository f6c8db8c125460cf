package projector

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// queuedAdd is an idemgate.QueuedBatchTxApplier: in a batch its inserts
// are queued and go out with the outbox rows.
type queuedAdd struct{}

const addEffect = `INSERT INTO effects (operation_id) VALUES ($1)`

var created = idemgate.Response{Status: 201, ContentType: "application/json", Body: []byte(`{"ok":true}`)}

func (queuedAdd) ApplyTx(ctx context.Context, tx pgx.Tx, cmd idemgate.Command) (idemgate.Response, error) {
	if _, err := tx.Exec(ctx, addEffect, cmd.OperationID); err != nil {
		return idemgate.Response{}, fmt.Errorf("add effect: %w", err)
	}
	return created, nil
}

func (a queuedAdd) ApplyTxBatch(ctx context.Context, tx pgx.Tx, cmds []idemgate.Command) ([]idemgate.Response, error) {
	out := make([]idemgate.Response, len(cmds))
	for i, c := range cmds {
		var err error
		if out[i], err = a.ApplyTx(ctx, tx, c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (queuedAdd) QueueTxBatch(_ context.Context, b *pgx.Batch, cmds []idemgate.Command) ([]idemgate.Response, error) {
	out := make([]idemgate.Response, len(cmds))
	for i, c := range cmds {
		b.Queue(addEffect, c.OperationID)
		out[i] = created
	}
	return out, nil
}

// queued is a module with a queued applier (effects.queue) and one that
// reads (effects.count: its response is the number of effects it saw).
func queued(t *testing.T) (*Projector, *sqldb.DB) {
	t.Helper()
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	if _, err := db.Pool.Exec(context.Background(), `CREATE TABLE effects (operation_id TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	valid := func(b []byte) (json.RawMessage, error) { return b, nil }
	reg := idemgate.MustRegistry(idemgate.Module{Name: "effects", Operations: []idemgate.Operation{
		{Name: "effects.queue", Path: "/v1/queued", Validate: valid, Apply: queuedAdd{}},
		{Name: "effects.count", Path: "/v1/counts", Validate: valid,
			Apply: idemgate.TxApplierFunc(func(ctx context.Context, tx pgx.Tx, _ idemgate.Command) (idemgate.Response, error) {
				var n int
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
					return idemgate.Response{}, err
				}
				return idemgate.Response{Status: 200, ContentType: "application/json", Body: fmt.Appendf(nil, `{"effects":%d}`, n)}, nil
			}),
		},
	}})
	p, err := New(Config{Store: store.New(db, 0), Registry: reg, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return p, db
}

// A queued applier's statements run in the batch's order: an applier that
// reads after them sees them, and each command is applied once.
func TestQueuedEffectsKeepTheBatchOrder(t *testing.T) {
	p, db := queued(t)
	ctx := context.Background()
	a, b := claimAndRecord(t, db, "effects.queue"), claimAndRecord(t, db, "effects.queue")
	counter := claimAndRecord(t, db, "effects.count")
	c := claimAndRecord(t, db, "effects.queue")
	run := []*kgo.Record{a, b, counter, c}
	if err := p.HandleBatch(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := p.HandleBatch(ctx, run); err != nil { // redelivered
		t.Fatal(err)
	}
	var effects, outbox int
	var seen string
	err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM effects), (SELECT count(*) FROM outbox),
       (SELECT convert_from(body, 'UTF8') FROM outbox WHERE operation = 'effects.count')`).Scan(&effects, &outbox, &seen)
	if err != nil {
		t.Fatal(err)
	}
	if effects != 3 || outbox != 4 || seen != `{"effects":2}` {
		t.Fatalf("effects %d, outbox rows %d, the counter saw %s; want 3, 4 and the 2 queued before it", effects, outbox, seen)
	}
}

// A queued statement that fails fails the batch's transaction: nothing is
// recorded (no dedup record, no outbox row, no effect), and once the cause
// is gone the batch applies, once.
func TestQueuedEffectFailureRecordsNothing(t *testing.T) {
	p, db := queued(t)
	ctx := context.Background()
	run := []*kgo.Record{claimAndRecord(t, db, "effects.queue"), claimAndRecord(t, db, "effects.queue")}
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE effects RENAME TO effects_away`); err != nil {
		t.Fatal(err)
	}
	if err := p.HandleBatch(ctx, run); err == nil {
		t.Fatal("a batch whose queued insert fails succeeded")
	}
	var outbox, processed int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM processed_events)`).Scan(&outbox, &processed); err != nil {
		t.Fatal(err)
	}
	if outbox != 0 || processed != 0 {
		t.Fatalf("after the failed batch: outbox rows %d, processed events %d; want 0, 0", outbox, processed)
	}
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE effects_away RENAME TO effects`); err != nil {
		t.Fatal(err)
	}
	if err := p.HandleBatch(ctx, run); err != nil {
		t.Fatalf("the batch once the cause is gone: %v", err)
	}
	var effects int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM effects), (SELECT count(*) FROM outbox)`).Scan(&effects, &outbox); err != nil {
		t.Fatal(err)
	}
	if effects != 2 || outbox != 2 {
		t.Fatalf("effects %d, outbox rows %d; want 2 and 2", effects, outbox)
	}
}
