package sqldb_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// TestInPipelineRetriesCommitTimeSerializationFailure is the write skew of
// TestInTxRetriesCommitTimeSerializationFailure in one round trip: the
// pipeline reads b and writes a, then (first attempt only) sleeps before
// its COMMIT while a rival reads a, writes b and commits. PostgreSQL
// refuses the pipeline's COMMIT (40001); the whole pipeline must run
// again and apply its write once.
func TestInPipelineRetriesCommitTimeSerializationFailure(t *testing.T) {
	ctx := context.Background()
	db := newSkew(t)

	var attempts atomic.Int32
	rivalDone := make(chan error, 1)
	err := db.InPipeline(ctx, func(b *pgx.Batch) {
		n := attempts.Add(1)
		b.Queue(`SELECT v FROM skew WHERE k = 'b'`)
		b.Queue(`UPDATE skew SET v = v + 1 WHERE k = 'a'`)
		if n == 1 {
			b.Queue(`SELECT pg_sleep(1.5)`)
			go func() {
				// The pipeline has read b and written a once it sleeps
				// before its COMMIT.
				err := testenv.Poll(ctx, 10*time.Second, func() error {
					var n int
					err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND query = 'SELECT pg_sleep(1.5)'`).Scan(&n)
					if err != nil {
						return err
					}
					return testenv.Check(n == 1, "the pipeline is not in its pg_sleep")
				})
				if err != nil {
					rivalDone <- err
					return
				}
				rivalDone <- rival(ctx, db)
			}()
		}
	}, func(br pgx.BatchResults) error {
		var v int
		if err := br.QueryRow().Scan(&v); err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		if attempts.Load() == 1 {
			_, err := br.Exec() // pg_sleep
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InPipeline: %v", err)
	}
	if err := <-rivalDone; err != nil {
		t.Fatalf("rival: %v", err)
	}
	if got := attempts.Load(); got != 2 {
		t.Fatalf("attempts = %d, want 2 (one commit-time failure, one retry)", got)
	}
	appliedOnce(t, db)
}

// TestInPipelineFailedStatementRollsBack: a statement the server refuses
// skips the rest of the pipeline, COMMIT included; nothing is applied,
// the error is returned once (it is not retryable), and the pool's
// connection is usable again.
func TestInPipelineFailedStatementRollsBack(t *testing.T) {
	ctx := context.Background()
	db := testenv.OpenDB(t, env.NewDatabase(t))
	mustExec(t, db, `CREATE TABLE t1 (k INT PRIMARY KEY)`)
	var attempts int
	err := db.InPipeline(ctx, func(b *pgx.Batch) {
		attempts++
		b.Queue(`INSERT INTO t1 VALUES (1)`)
		b.Queue(`INSERT INTO t1 VALUES (1)`) // unique violation
		b.Queue(`INSERT INTO t1 VALUES (2)`)
	}, func(br pgx.BatchResults) error {
		for range 3 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	})
	if sqldb.SQLState(err) != "23505" || attempts != 1 {
		t.Fatalf("err = %v after %d attempts, want a unique violation after 1", err, attempts)
	}
	for range 3 { // every pooled connection is in a clean state
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM t1`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("rows = %d (%v); want 0", n, err)
		}
	}
}
