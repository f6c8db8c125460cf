package sqldb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// TestPoolRecoversFromHalfOpenConnects: behind a link hung half-open, a
// connection attempt never gets an answer. The pool builds connections
// in the background, detached from the caller's deadline, and counts
// each one under construction against its size; without a connect
// timeout of its own (the URL gives none here), attempts made during the
// fault hung for good, held every slot, and the pool never served again
// once the link was healed (serve then hung at SIGTERM, its emitter
// waiting on a connection: TestDatabaseHalfOpen, one run in three).
func TestPoolRecoversFromHalfOpenConnects(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs PostgreSQL")
	}
	ctx := context.Background()
	f, proxied := testenv.NewDBNetFault(t, env.NewDatabase(t))
	db, err := sqldb.Open(ctx, proxied, sqldb.Options{MaxConns: 2, TxTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	one := func() error {
		return db.InTx(ctx, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT 1")
			return err
		})
	}
	if err := one(); err != nil {
		t.Fatal(err)
	}

	f.HalfOpen()
	db.Pool.Reset() // the next transactions must connect, through the hung link
	for range 4 {
		if err := one(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a transaction through the hung link: %v, want its deadline exceeded", err)
		}
	}
	f.Heal()
	testenv.Eventually(t, 30*time.Second, "a transaction once the link is healed", one)
	if sqldb.DefaultConnectTimeout >= 30*time.Second {
		t.Fatalf("DefaultConnectTimeout %v: the wait above would not tell", sqldb.DefaultConnectTimeout)
	}
}
