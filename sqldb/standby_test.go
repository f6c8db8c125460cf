package sqldb_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idemgate/idemgate/pgserver"
	"github.com/idemgate/idemgate/sqldb"
)

// TestPoolRefusesStandby: a pool whose URL reaches a standby (no
// target_session_attrs) hands out no connection to it: the caller gets
// ErrStandby, transient, where a write would have met SQLSTATE 25006;
// on the pair's URL (both hosts, read-write) it reaches the primary.
func TestPoolRefusesStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a PostgreSQL pair")
	}
	dir, err := os.MkdirTemp("", "idemgate-sqldb-standby-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pair, err := pgserver.StartPair(ctx, pgserver.Config{DataDir: filepath.Join(dir, "a"), StandbyDataDir: filepath.Join(dir, "b"), NoFsync: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pair.Stop(context.Background()) })

	_, err = sqldb.Open(ctx, pair.Standby().URL(), sqldb.Options{})
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
