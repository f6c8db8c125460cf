package payments

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/projector"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// These tests run the appliers at the transaction level, on the test
// database: no HTTP, no Kafka.

var fixedNow = time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)

func newDB(t *testing.T) (*sqldb.DB, idemgate.Module) {
	t.Helper()
	mod := Module(Config{Now: func() time.Time { return fixedNow }})
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations(), sqldbSet(mod)))
	return db, mod
}

func sqldbSet(m idemgate.Module) sqldb.MigrationSet {
	return sqldb.MigrationSet{Module: m.Name, FS: m.Migrations}
}

func newCommand(op, tenant, target, request string) idemgate.Command {
	return idemgate.Command{OperationID: uuid.NewString(), Tenant: tenant, Operation: op, IdempotencyKey: "k",
		Target: target, Request: json.RawMessage(request), AcceptedAt: fixedNow}
}

// apply runs op's applier in one retried transaction, as the projector
// does, and returns its response.
func apply(t *testing.T, db *sqldb.DB, mod idemgate.Module, cmd idemgate.Command) idemgate.Response {
	t.Helper()
	var resp idemgate.Response
	err := db.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		resp, err = applierOf(t, mod, cmd.Operation).ApplyTx(context.Background(), tx, cmd)
		return err
	})
	if err != nil {
		t.Fatalf("apply %s: %v", cmd.Operation, err)
	}
	return resp
}

func applierOf(t *testing.T, mod idemgate.Module, name string) idemgate.TxApplier {
	for _, op := range mod.Operations {
		if op.Name == name {
			return op.Apply
		}
	}
	t.Fatalf("no operation %s", name)
	return nil
}

func scalar[T any](t *testing.T, db *sqldb.DB, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := db.Pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// createPaymentOf applies a payment of amount and returns its id.
func createPaymentOf(t *testing.T, db *sqldb.DB, mod idemgate.Module, tenant string, amount int64) string {
	t.Helper()
	cmd := newCommand(OpCreatePayment, tenant, "", fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"c","description":null}`, amount))
	resp := apply(t, db, mod, cmd)
	if resp.Status != 201 {
		t.Fatalf("payment: %d %s", resp.Status, resp.Body)
	}
	return PaymentID(cmd.OperationID)
}

// The subtests of a test share its database (a new one costs ~250 ms,
// an applier a few); each works on payments of its own, so that every
// subtest also passes alone.

func TestCreatePayment(t *testing.T) {
	db, mod := newDB(t)
	t.Run("OK", func(t *testing.T) {
		cmd := newCommand(OpCreatePayment, "tenant-a", "", `{"amount":1000,"currency":"EUR","customer":"cus_1","description":"d"}`)
		resp := apply(t, db, mod, cmd)
		id := PaymentID(cmd.OperationID)
		want := `{"id":"` + id + `","operation_id":"` + cmd.OperationID + `","status":"succeeded","amount":1000,"currency":"EUR",` +
			`"customer":"cus_1","description":"d","refunded_amount":0,"created_at":"2026-05-04T03:02:01.000000Z"}`
		if resp.Status != 201 || resp.Location != "/v1/payments/"+id || resp.ContentType != "application/json" || string(resp.Body) != want {
			t.Fatalf("response %d %s %s %s", resp.Status, resp.Location, resp.ContentType, resp.Body)
		}
		if n := scalar[int](t, db, `SELECT count(*) FROM payments WHERE payment_id = $1 AND tenant_id = 'tenant-a' AND amount = 1000`, id); n != 1 {
			t.Fatalf("payments rows = %d", n)
		}
	})
	t.Run("OKAtTheDeclineLimit", func(t *testing.T) {
		if resp := apply(t, db, mod, newCommand(OpCreatePayment, "t", "", fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"c"}`, DeclineAbove))); resp.Status != 201 {
			t.Fatalf("status %d, want 201 at exactly %d", resp.Status, DeclineAbove)
		}
	})
	t.Run("DeclinedAboveTheLimit", func(t *testing.T) {
		cmd := newCommand(OpCreatePayment, "t", "", fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"c"}`, DeclineAbove+1))
		resp := apply(t, db, mod, cmd)
		if resp.Status != 402 || resp.ContentType != idemgate.ContentTypeProblem || !strings.Contains(string(resp.Body), "/payment-declined") {
			t.Fatalf("response %d %s %s, want a 402 payment-declined problem", resp.Status, resp.ContentType, resp.Body)
		}
		if n := scalar[int](t, db, `SELECT count(*) FROM payments WHERE operation_id = $1`, cmd.OperationID); n != 0 {
			t.Fatalf("a declined payment wrote %d rows", n)
		}
	})
	t.Run("ErrUnreadableRequest", func(t *testing.T) {
		err := db.InTx(context.Background(), func(tx pgx.Tx) error {
			_, err := applierOf(t, mod, OpCreatePayment).ApplyTx(context.Background(), tx, newCommand(OpCreatePayment, "t", "", `{"amount":"x"}`))
			return err
		})
		if !projector.IsPermanent(err) {
			t.Fatalf("err = %v, want a permanent error", err)
		}
	})
}

func TestCreateRefund(t *testing.T) {
	db, mod := newDB(t)
	t.Run("OKUpToTheAmount", func(t *testing.T) {
		pid := createPaymentOf(t, db, mod, "tenant-a", 1000)
		first := apply(t, db, mod, newCommand(OpCreateRefund, "tenant-a", pid, `{"amount":600}`))
		last := apply(t, db, mod, newCommand(OpCreateRefund, "tenant-a", pid, `{"amount":400}`))
		if first.Status != 201 || last.Status != 201 || !strings.HasPrefix(first.Location, "/v1/payments/"+pid+"/refunds/") {
			t.Fatalf("refunds %d %s, %d", first.Status, first.Location, last.Status)
		}
		if got := scalar[int64](t, db, `SELECT refunded_amount FROM payments WHERE payment_id = $1`, pid); got != 1000 {
			t.Fatalf("refunded_amount = %d, want 1000", got)
		}
	})
	t.Run("ExceedsThePayment", func(t *testing.T) {
		pid := createPaymentOf(t, db, mod, "tenant-a", 1000)
		apply(t, db, mod, newCommand(OpCreateRefund, "tenant-a", pid, `{"amount":600}`))
		resp := apply(t, db, mod, newCommand(OpCreateRefund, "tenant-a", pid, `{"amount":401}`))
		if resp.Status != 422 || !strings.Contains(string(resp.Body), "/refund-exceeds-payment") || !strings.Contains(string(resp.Body), "400 of 1000") {
			t.Fatalf("response %d %s, want 422 refund-exceeds-payment with 400 of 1000 left", resp.Status, resp.Body)
		}
		if got := scalar[int64](t, db, `SELECT refunded_amount FROM payments WHERE payment_id = $1`, pid); got != 600 {
			t.Fatalf("refunded_amount = %d, want 600", got)
		}
	})
	for name, target := range map[string]string{
		"UnknownPayment":       uuid.NewString(),
		"NotAUUID":             "pay_1",
		"AnotherTenantPayment": "",
	} {
		t.Run(name, func(t *testing.T) {
			if target == "" {
				target = createPaymentOf(t, db, mod, "tenant-b", 1000)
			}
			cmd := newCommand(OpCreateRefund, "tenant-a", target, `{"amount":1}`)
			resp := apply(t, db, mod, cmd)
			if resp.Status != 404 || !strings.Contains(string(resp.Body), "/not-found") {
				t.Fatalf("response %d %s, want a stored 404", resp.Status, resp.Body)
			}
			if n := scalar[int](t, db, `SELECT count(*) FROM refunds WHERE operation_id = $1`, cmd.OperationID); n != 0 {
				t.Fatalf("%d refunds written", n)
			}
		})
	}
}

// TestRefundsRace interleaves two refunds of 600 on a payment of 1000: the
// second reads the payment before the first commits and then waits on its
// row lock. SERIALIZABLE refuses it (40001) once the first commits; the
// retry, as the projector makes it, sees the first refund and records a
// 422. The payment is never refunded twice.
func TestRefundsRace(t *testing.T) {
	db, mod := newDB(t)
	ctx := context.Background()
	pid := createPaymentOf(t, db, mod, "tenant-a", 1000)
	refund := applierOf(t, mod, OpCreateRefund)
	a, b := newCommand(OpCreateRefund, "tenant-a", pid, `{"amount":600}`), newCommand(OpCreateRefund, "tenant-a", pid, `{"amount":600}`)

	txA, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		t.Fatal(err)
	}
	txB, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		t.Fatal(err)
	}
	defer txB.Rollback(ctx)
	// B takes its snapshot now: it reads the payment untouched.
	if _, err := txB.Exec(ctx, `SELECT refunded_amount FROM payments WHERE payment_id = $1`, pid); err != nil {
		t.Fatal(err)
	}
	if resp, err := refund.ApplyTx(ctx, txA, a); err != nil || resp.Status != 201 {
		t.Fatalf("A: %d %v", resp.Status, err)
	}
	bDone := make(chan error, 1)
	go func() { _, err := refund.ApplyTx(ctx, txB, b); bDone <- err }()
	bPID := txB.Conn().PgConn().PID()
	testenv.Eventually(t, 10*time.Second, "B waits on A's row lock", func() error {
		var waitType, state, query string
		err := db.Pool.QueryRow(ctx, `SELECT coalesce(wait_event_type, ''), coalesce(state, ''), coalesce(query, '')
			FROM pg_stat_activity WHERE pid = $1`, bPID).Scan(&waitType, &state, &query)
		if err != nil {
			return err
		}
		return testenv.Check(waitType == "Lock", "B's backend: wait %q, state %q, query %q", waitType, state, query)
	})
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; sqldb.SQLState(err) != "40001" {
		t.Fatalf("B's first attempt: %v, want a serialization failure (40001)", err)
	}
	_ = txB.Rollback(ctx)
	if resp := apply(t, db, mod, b); resp.Status != 422 {
		t.Fatalf("B retried: %d %s, want 422", resp.Status, resp.Body)
	}
	if got := scalar[int64](t, db, `SELECT refunded_amount FROM payments WHERE payment_id = $1`, pid); got != 600 {
		t.Fatalf("refunded_amount = %d, want 600", got)
	}
	if n := scalar[int](t, db, `SELECT count(*) FROM refunds`); n != 1 {
		t.Fatalf("refunds = %d, want 1", n)
	}
}

// TestRedeliveredRefundAppliesOnce delivers one refund event twice through
// the projector: the second delivery is a no-op, not a second refund and
// not a dead letter.
func TestRedeliveredRefundAppliesOnce(t *testing.T) {
	db, mod := newDB(t)
	ctx := context.Background()
	pid := createPaymentOf(t, db, mod, "tenant-a", 1000)
	st := store.New(db, 0)
	p, err := projector.New(projector.Config{Store: st, Registry: idemgate.MustRegistry(mod), Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	cmd := newCommand(OpCreateRefund, "tenant-a", pid, `{"amount":300}`)
	claims, err := st.ClaimKeys(ctx, []idemgate.ClaimRequest{{Tenant: cmd.Tenant, Operation: cmd.Operation, Key: "r-1", Target: pid,
		Fingerprint: []byte{1}, Request: cmd.Request, Retention: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	cmd.OperationID, cmd.IdempotencyKey = claims[0].OperationID, "r-1"
	env, err := events.CommandAccepted(cmd)
	if err != nil {
		t.Fatal(err)
	}
	rec := env.Record("commands", nil)
	for i := range 2 {
		if err := p.Handle(ctx, rec); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if got := scalar[int64](t, db, `SELECT refunded_amount FROM payments WHERE payment_id = $1`, pid); got != 300 {
		t.Fatalf("refunded_amount = %d, want 300", got)
	}
	if n := scalar[int](t, db, `SELECT count(*) FROM refunds`); n != 1 {
		t.Fatalf("refunds = %d, want 1", n)
	}
}
