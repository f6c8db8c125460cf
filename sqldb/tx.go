package sqldb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	crdbpgxv5 "github.com/cockroachdb/cockroach-go/v2/crdb/crdbpgxv5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/idemgate/idemgate/internal/retry"
)

// maxRetries bounds how often a transaction is retried after a
// serialization failure before the error is returned to the caller.
const maxRetries = 30

// InTx runs fn in one SERIALIZABLE transaction and retries the whole
// transaction, commit included, when the server asks for a retry (SQLSTATE
// 40001, or 40P01 on PostgreSQL).
//
// fn may run several times: it must have no effect outside the database,
// and it must wrap errors with %w so that the SQLSTATE stays visible.
//
// On CockroachDB this is crdbpgxv5.ExecuteTx (savepoint-based retries). On
// PostgreSQL it is NOT: ExecuteTx treats RELEASE SAVEPOINT as the commit,
// which holds only on CockroachDB, and it drops the error of the real
// COMMIT, so a serialization failure raised at commit would be lost and the
// caller would believe work committed that never did. Here the retry loop
// wraps BEGIN ... COMMIT instead.
func (db *DB) InTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return db.inTx(ctx, serializable, fn)
}

// InReadCommitted runs fn in a READ COMMITTED transaction, retried like
// InTx. It is for work that needs no serializability and must not be
// chosen as a serialization victim: the relay's scans and marks of the
// outbox, the waiters' completion checks. (CockroachDB runs it
// SERIALIZABLE unless READ COMMITTED is enabled there; the retries cover
// that.)
func (db *DB) InReadCommitted(ctx context.Context, fn func(pgx.Tx) error) error {
	return db.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
}

// InSnapshot runs fn in a read-only REPEATABLE READ transaction: one
// consistent snapshot, and, read-only, never a serialization failure nor
// the cause of another's. For the API's reads (an operation, a read
// model). (CockroachDB runs it SERIALIZABLE unless REPEATABLE READ is
// enabled there; the retries cover that.)
func (db *DB) InSnapshot(ctx context.Context, fn func(pgx.Tx) error) error {
	return db.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (db *DB) inTx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	if db.Flavor == CockroachDB {
		attempt := 0
		err := crdbpgxv5.ExecuteTx(crdb.WithMaxRetries(ctx, maxRetries), db.Pool, opts, func(tx pgx.Tx) error {
			if attempt > 0 {
				db.countRetry()
			}
			attempt++
			return fn(tx)
		})
		return db.counted(err)
	}
	return db.retried(ctx, func(ctx context.Context) error { return db.runOnce(ctx, opts, fn) })
}

// retried runs once (a whole transaction, BEGIN to COMMIT) until it
// succeeds, fails in a way no retry mends, or has failed maxRetries times
// with a serialization failure or a deadlock, with a jittered backoff
// between attempts.
func (db *DB) retried(ctx context.Context, once func(context.Context) error) error {
	attempt := 0
	wait := backoff.New()
	err := crdb.ExecuteCtx(crdb.WithMaxRetries(ctx, maxRetries), func(ctx context.Context, _ ...any) error {
		if attempt > 0 {
			db.countRetry()
			if err := retry.Sleep(ctx, wait.NextBackOff()); err != nil {
				return err
			}
		}
		attempt++
		err := once(ctx)
		if isDeadlock(err) {
			// A deadlock is as retryable as a serialization failure; make
			// crdb.ExecuteCtx see it as one.
			return &retryable{err}
		}
		return err
	})
	return db.counted(err)
}

// counted counts a transaction that gave up.
func (db *DB) counted(err error) error {
	var maxErr *crdb.MaxRetriesExceededError
	if errors.As(err, &maxErr) {
		db.countGaveUp()
	}
	return err
}

func (db *DB) runOnce(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	tx, err := db.Pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sqldb: commit: %w", err)
	}
	return nil
}

// backoff is the wait between attempts at a transaction: short, and
// fully jittered so that transactions that keep colliding drift apart.
var backoff = retry.Policy{Base: 2 * time.Millisecond, Max: 16 * time.Millisecond, Jitter: 1}

// SQLState returns the SQLSTATE code in err's chain, or "".
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func isDeadlock(err error) bool { return SQLState(err) == "40P01" }

// retryable presents a deadlock as a serialization failure to crdb's retry
// loop while keeping the original error in the chain.
type retryable struct{ err error }

func (r *retryable) Error() string    { return r.err.Error() }
func (r *retryable) Unwrap() error    { return r.err }
func (r *retryable) SQLState() string { return "40001" }

// IsTransient reports whether err is an infrastructure failure that a
// later attempt may not meet (a lost connection, a server shutting down,
// a serialization failure, a timeout, a server that is a standby after a
// failover), as opposed to an error the same
// statement will raise again (a constraint violation, bad data).
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "40", "53", "57", "58", "XX":
			return true
		}
		// 25006, a write on a read-only server: a connection that reached
		// a standby (a failover moved the primary). The pool drops such
		// connections (ErrStandby); the next one finds the primary.
		return pgErr.Code == "25006"
	}
	// Anything else comes from below SQL: the network, the pool.
	return true
}
