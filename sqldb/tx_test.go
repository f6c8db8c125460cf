package sqldb_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// TestInTxRetriesCommitTimeSerializationFailure builds a write skew that
// PostgreSQL's SSI detects only when the first transaction COMMITs: each
// of two transactions reads the row the other writes. The rival commits
// first, so InTx's first attempt fails at COMMIT with 40001 after every
// statement succeeded. InTx must retry the whole transaction and apply its
// write; crdbpgxv5.ExecuteTx would have dropped that error.
func TestInTxRetriesCommitTimeSerializationFailure(t *testing.T) {
	ctx := context.Background()
	db := newSkew(t)
	if db.Flavor != sqldb.Postgres {
		t.Fatalf("flavor = %s, want postgres", db.Flavor)
	}

	var attempts, statementErrors atomic.Int32
	var commitFailures atomic.Int32
	err := db.InTx(ctx, func(tx pgx.Tx) error {
		n := attempts.Add(1)
		var b int
		if err := tx.QueryRow(ctx, `SELECT v FROM skew WHERE k = 'b'`).Scan(&b); err != nil {
			statementErrors.Add(1)
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE skew SET v = v + 1 WHERE k = 'a'`); err != nil {
			statementErrors.Add(1)
			return err
		}
		if n == 1 {
			// The rival reads 'a' and writes 'b', and commits first.
			if err := rival(ctx, db); err != nil {
				t.Errorf("rival: %v", err)
				return err
			}
			commitFailures.Add(1) // the commit that follows must fail
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if got := attempts.Load(); got != 2 {
		t.Fatalf("attempts = %d, want 2 (one commit-time failure, one retry)", got)
	}
	if got := statementErrors.Load(); got != 0 {
		t.Fatalf("%d statements failed; the failure must come at COMMIT", got)
	}
	appliedOnce(t, db)
}

// newSkew is a database of t's own with the table of the write-skew
// tests: rows a and b, both 0.
func newSkew(t *testing.T) *sqldb.DB {
	t.Helper()
	db := testenv.OpenDB(t, env.NewDatabase(t))
	mustExec(t, db, `CREATE TABLE skew (k TEXT PRIMARY KEY, v INT NOT NULL)`)
	mustExec(t, db, `INSERT INTO skew VALUES ('a', 0), ('b', 0)`)
	return db
}

// rival is the other side of the write skew: it reads a, writes b (+10)
// and commits, at SERIALIZABLE.
func rival(ctx context.Context, db *sqldb.DB) error {
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var a int
	if err := tx.QueryRow(ctx, `SELECT v FROM skew WHERE k = 'a'`).Scan(&a); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE skew SET v = v + 10 WHERE k = 'b'`); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// appliedOnce checks that the skew's two writes, a +1 and the rival's
// b +10, were applied exactly once each.
func appliedOnce(t *testing.T, db *sqldb.DB) {
	t.Helper()
	var a, b int
	if err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT v FROM skew WHERE k='a'), (SELECT v FROM skew WHERE k='b')`).Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	if a != 1 || b != 10 {
		t.Fatalf("a, b = %d, %d; want 1, 10 (both writes applied exactly once)", a, b)
	}
}

// TestInTxReturnsNonRetryableErrors checks a plain error ends the
// transaction at once and rolls it back.
func TestInTxReturnsNonRetryableErrors(t *testing.T) {
	ctx := context.Background()
	db := testenv.OpenDB(t, env.NewDatabase(t))
	mustExec(t, db, `CREATE TABLE t1 (v INT)`)
	boom := errors.New("boom")
	var attempts int
	err := db.InTx(ctx, func(tx pgx.Tx) error {
		attempts++
		if _, err := tx.Exec(ctx, `INSERT INTO t1 VALUES (1)`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || attempts != 1 {
		t.Fatalf("err = %v after %d attempts; want boom after 1", err, attempts)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM t1`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows = %d (%v); want 0: the failed transaction must roll back", n, err)
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	core := store.Migrations()
	db := testenv.OpenDB(t, env.NewDatabase(t, core)) // NewDatabase migrated once
	applied, err := db.Migrate(ctx, core)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migration applied %v; want nothing", applied)
	}
}

func mustExec(t *testing.T, db *sqldb.DB, sql string) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
