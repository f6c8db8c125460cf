package sqldb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/idemgate/idemgate/sqldb"

	"github.com/idemgate/idemgate/testenv"
)

// TestPoolRefusesStandby: a pool whose URL reaches a standby (no
// target_session_attrs) hands out no connection to it: the caller gets
// ErrStandby, transient, where a write would have met SQLSTATE 25006;
// on the pair's URL (both hosts, read-write) it reaches the primary.
func TestPoolRefusesStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a PostgreSQL pair")
	}
	pair := testenv.StartPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err := sqldb.Open(ctx, pair.Standby().URL(), sqldb.Options{})
	if !errors.Is(err, sqldb.ErrStandby) || !sqldb.IsTransient(err) {
		t.Fatalf("open on the standby: %v; want ErrStandby, transient", err)
	}
	db, err := sqldb.Open(ctx, pair.URL(), sqldb.Options{})
	if err != nil {
		t.Fatalf("open on the pair: %v", err)
	}
	defer db.Close()
	var recovery bool
	if err := db.Pool.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil || recovery {
		t.Fatalf("the pair's URL reached a server in recovery (%v, %v)", recovery, err)
	}
}
