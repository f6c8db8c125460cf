package testenv

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idemgate/idemgate/pgserver"
)

// Quiet is the logger of a PostgreSQL server a test starts: warnings and
// errors only, on stderr.
var Quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// DataDir is a new folder of t's own for a PostgreSQL server's data (or
// dev mode's), removed when t ends. The server's account can reach it:
// as root, PostgreSQL runs as "postgres".
func DataDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := dataDir(name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// dataDir is DataDir's folder, for a TestMain (no t to clean up with).
func dataDir(name string) (string, error) {
	dir, err := os.MkdirTemp("", "idemgate-"+name+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// StartPair starts a PostgreSQL primary with a synchronous standby of t's
// own (pgserver.StartPair) with the tests' settings (NoFsync), stopped
// when t ends.
func StartPair(t testing.TB) *pgserver.Pair {
	t.Helper()
	dir := DataDir(t, "pair")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pair, err := pgserver.StartPair(ctx, pgserver.Config{DataDir: filepath.Join(dir, "a"), StandbyDataDir: filepath.Join(dir, "b"),
		NoFsync: true, Logger: Quiet})
	if err != nil {
		t.Fatalf("testenv: the PostgreSQL pair: %v", err)
	}
	t.Cleanup(func() { _ = pair.Stop(context.Background()) })
	return pair
}

// StopLeftover stops the PostgreSQL server of the cluster in dir if one
// still runs (pgserver.Find): dev mode stops its own on SIGTERM, a dev
// process killed with -9 leaves it running. Call it in a cleanup that
// runs after the process's own.
func StopLeftover(t testing.TB, dir string) {
	t.Helper()
	srv, ok, err := pgserver.Find(pgserver.Config{DataDir: dir, Logger: Quiet})
	if err != nil || !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("testenv: stop the leftover PostgreSQL of %s: %v", dir, err)
		return
	}
	t.Logf("stopped the leftover PostgreSQL of %s", dir)
}
