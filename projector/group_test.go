package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// gated is a module whose effects.hold applier holds its transaction
// until release is closed (entered says it got there), beside effects.add
// and effects.fail, whose applier fails with a permanent error.
func gated(t *testing.T) (p *Projector, db *sqldb.DB, entered chan struct{}, release chan struct{}) {
	t.Helper()
	db = testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	if _, err := db.Pool.Exec(context.Background(), `CREATE TABLE effects (operation_id TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	entered, release = make(chan struct{}, 16), make(chan struct{})
	valid := func(b []byte) (json.RawMessage, error) { return b, nil }
	reg := idemgate.MustRegistry(idemgate.Module{Name: "effects", Operations: []idemgate.Operation{
		{Name: "effects.add", Path: "/v1/effects", Validate: valid, Apply: queuedAdd{}},
		{Name: "effects.hold", Path: "/v1/holds", Validate: valid,
			Apply: idemgate.TxApplierFunc(func(context.Context, pgx.Tx, idemgate.Command) (idemgate.Response, error) {
				entered <- struct{}{}
				<-release
				return created, nil
			})},
		{Name: "effects.fail", Path: "/v1/fails", Validate: valid,
			Apply: idemgate.TxApplierFunc(func(context.Context, pgx.Tx, idemgate.Command) (idemgate.Response, error) {
				return idemgate.Response{}, fmt.Errorf("%w: refused", idemgate.ErrPermanent)
			})},
	}})
	p, err := New(Config{Store: store.New(db, 0), Registry: reg, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return p, db, entered, release
}

// holdSlots fills every group slot with a held transaction and returns
// once each is inside it; the returned wait reports their errors.
func holdSlots(t *testing.T, p *Projector, db *sqldb.DB, entered chan struct{}) (wait func() []error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, groupSlots)
	for i := range groupSlots {
		rec := claimAndRecord(t, db, "effects.hold")
		wg.Go(func() { errs[i] = p.Handle(context.Background(), rec) })
		<-entered
	}
	return func() []error { wg.Wait(); return errs }
}

// waitQueued returns once n stretches wait in the grouper's queue.
func waitQueued(t *testing.T, p *Projector, n int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%d stretches queued", n), func() error {
		got := p.group.queue.Len()
		return testenv.Check(got == n, "%d queued", got)
	})
}

// applied counts the effects, the effects.add outbox rows, and the
// transactions that wrote those rows (their distinct xmin).
func applied(t *testing.T, db *sqldb.DB) (effects, rows, txs int) {
	t.Helper()
	err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM effects), count(*), count(DISTINCT xmin::TEXT)
FROM outbox WHERE operation = 'effects.add'`).Scan(&effects, &rows, &txs)
	if err != nil {
		t.Fatal(err)
	}
	return effects, rows, txs
}

// runs hands each run to HandleBatch (a partition's worker each) and
// returns a wait for their errors.
func runs(p *Projector, rs ...[]*kgo.Record) (wait func() []error) {
	var wg sync.WaitGroup
	errs := make([]error, len(rs))
	for i, r := range rs {
		wg.Go(func() { errs[i] = p.HandleBatch(context.Background(), r) })
	}
	return func() []error { wg.Wait(); return errs }
}

// Stretches of several partitions that arrive while every slot is busy
// share the next transaction: their outbox rows have one xmin. Each is
// applied once, and each caller gets its own outcome.
func TestPartitionsShareATransaction(t *testing.T) {
	p, db, entered, release := gated(t)
	ctx := context.Background()
	held := holdSlots(t, p, db, entered)
	var rs [][]*kgo.Record
	for range 4 {
		rs = append(rs, []*kgo.Record{claimAndRecord(t, db, "effects.add"), claimAndRecord(t, db, "effects.add")})
	}
	wait := runs(p, rs...)
	waitQueued(t, p, 4)
	close(release)
	for i, err := range append(held(), wait()...) {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	effects, rows, txs := applied(t, db)
	if effects != 8 || rows != 8 || txs != 1 {
		t.Fatalf("effects %d, outbox rows %d in %d transactions; want 8, 8 in 1", effects, rows, txs)
	}
	for i, r := range rs { // redelivered, in a group again: nothing more
		if err := p.HandleBatch(ctx, r); err != nil {
			t.Fatalf("redelivery of run %d: %v", i, err)
		}
	}
	effects, _, _ = applied(t, db)
	if effects != 8 {
		t.Fatalf("after the redeliveries: effects %d, want 8", effects)
	}
}

// A stretch whose applier fails does not fail the others of its group:
// the group is applied again stretch by stretch, the others are applied
// once, and only the failing stretch's caller gets the (permanent) error.
func TestAFailingStretchFailsAlone(t *testing.T) {
	p, db, entered, release := gated(t)
	held := holdSlots(t, p, db, entered)
	good := [][]*kgo.Record{
		{claimAndRecord(t, db, "effects.add"), claimAndRecord(t, db, "effects.add")},
		{claimAndRecord(t, db, "effects.add")},
	}
	bad := []*kgo.Record{claimAndRecord(t, db, "effects.add"), claimAndRecord(t, db, "effects.fail")}
	wait := runs(p, good[0], bad, good[1])
	waitQueued(t, p, 3)
	close(release)
	for i, err := range held() {
		if err != nil {
			t.Fatalf("held %d: %v", i, err)
		}
	}
	errs := wait()
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("the good stretches: %v, %v; want nil", errs[0], errs[2])
	}
	if errs[1] == nil || !errors.Is(errs[1], idemgate.ErrPermanent) {
		t.Fatalf("the failing stretch: %v, want its applier's permanent error", errs[1])
	}
	effects, rows, _ := applied(t, db)
	// The failing stretch recorded nothing, its good command neither.
	if effects != 3 || rows != 3 {
		t.Fatalf("effects %d, outbox rows %d; want 3, 3 (the good stretches', once)", effects, rows)
	}
}

// A stretch holding a command that a queued stretch holds too (an event
// re-emitted into another partition) waits for a later group, as does
// one that would take the group past its bound: a group's commands are
// distinct, and the command is applied once.
func TestAGroupNeverHoldsACommandTwice(t *testing.T) {
	cmd := func(id string) idemgate.Command { return idemgate.Command{OperationID: id} }
	a := &stretch{cmds: []idemgate.Command{cmd("1"), cmd("2")}}
	b := &stretch{cmds: []idemgate.Command{cmd("3"), cmd("1")}} // shares "1" with a
	c := &stretch{cmds: []idemgate.Command{cmd("4")}}
	d := &stretch{cmds: []idemgate.Command{cmd("5"), cmd("6")}} // past a bound of 4 after a and c
	group, rest := takeGroup([]*stretch{a, b, c, d}, 4)
	if len(group) != 2 || group[0] != a || group[1] != c || len(rest) != 2 || rest[0] != b || rest[1] != d {
		t.Fatalf("takeGroup = %v, %v; want [a c], [b d]", group, rest)
	}
	if group, _ := takeGroup([]*stretch{d, a}, 1); len(group) != 1 || group[0] != d {
		t.Fatalf("a first stretch past the bound: group %v, want it alone", group)
	}

	p, db, entered, release := gated(t)
	held := holdSlots(t, p, db, entered)
	shared := claimAndRecord(t, db, "effects.add")
	wait := runs(p, []*kgo.Record{shared, claimAndRecord(t, db, "effects.add")}, []*kgo.Record{claimAndRecord(t, db, "effects.add"), shared})
	waitQueued(t, p, 2)
	close(release)
	for i, err := range append(held(), wait()...) {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	effects, rows, txs := applied(t, db)
	if effects != 3 || rows != 3 || txs != 2 {
		t.Fatalf("effects %d, outbox rows %d in %d transactions; want 3, 3 in 2 (the shared command once, the second run in a group of its own)", effects, rows, txs)
	}
}

// A run whose partition is revoked (its context ends) while it waits for
// a group leaves the queue at once, with the context's error, and nothing
// of it is applied: the next owner applies it.
func TestARevokedRunLeavesTheQueue(t *testing.T) {
	p, db, entered, release := gated(t)
	ctx := context.Background()
	held := holdSlots(t, p, db, entered)
	run := []*kgo.Record{claimAndRecord(t, db, "effects.add"), claimAndRecord(t, db, "effects.add")}
	rctx, revoke := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- p.HandleBatch(rctx, run) }()
	waitQueued(t, p, 1)
	revoke()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the revoked run: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the revoked run still waits for a group while the slots are held")
	}
	if n := p.group.queue.Len(); n != 0 {
		t.Fatalf("%d stretches still queued", n)
	}
	close(release)
	for i, err := range held() {
		if err != nil {
			t.Fatalf("held %d: %v", i, err)
		}
	}
	effects, rows, _ := applied(t, db)
	if effects != 0 || rows != 0 {
		t.Fatalf("effects %d, outbox rows %d; want 0, 0 (the revoked run applied nothing)", effects, rows)
	}
	if err := p.HandleBatch(ctx, run); err != nil { // its next owner
		t.Fatal(err)
	}
	effects, _, _ = applied(t, db)
	if effects != 2 {
		t.Fatalf("after the next owner: effects %d, want 2", effects)
	}
}
