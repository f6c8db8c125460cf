package pgserver

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// tempDir is a folder the server's account can reach (as root, the
// server runs as "postgres"), removed when t ends.
func tempDir(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts PostgreSQL")
	}
	dir, err := os.MkdirTemp("", "idemgate-pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func show(t *testing.T, url, setting string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, "SHOW "+setting).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestNoPortPicked: by default the server listens on no TCP port at all,
// only on a Unix socket in its own folder; stopped and started again it
// is at the same URL, as it is when a second Start adopts it.
func TestNoPortPicked(t *testing.T) {
	dir := tempDir(t)
	cfg := Config{DataDir: filepath.Join(dir, "pg")}
	s := start(t, cfg)
	if got := show(t, s.URL(), "listen_addresses"); got != "" {
		t.Fatalf("listen_addresses = %q, want '' (no TCP)", got)
	}
	if got := show(t, s.URL(), "transaction_isolation"); got != "serializable" {
		t.Fatalf("transaction_isolation = %q", got)
	}
	url := s.URL()
	if !strings.Contains(url, "host=%2F") || !strings.HasSuffix(strings.Split(url, "?")[0], "/idemgate") {
		t.Fatalf("URL %s: want the idemgate database on a socket folder", url)
	}
	adopted := start(t, cfg)
	if adopted.URL() != url {
		t.Fatalf("adopted at %s, started at %s", adopted.URL(), url)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := start(t, cfg)
	if again.URL() != url {
		t.Fatalf("restarted at %s, first at %s", again.URL(), url)
	}
	show(t, again.URL(), "port")
}

// TestLongClusterPath: a cluster whose socket path would not fit in a
// sockaddr_un gets its socket in a private folder in /tmp.
func TestLongClusterPath(t *testing.T) {
	dir := filepath.Join(tempDir(t), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := start(t, Config{DataDir: filepath.Join(dir, "pg")})
	t.Cleanup(func() { _ = s.Stop(context.Background()); _ = os.RemoveAll(s.SocketDir()) })
	if !strings.HasPrefix(s.SocketDir(), os.TempDir()) {
		t.Fatalf("socket in %s", s.SocketDir())
	}
	show(t, s.URL(), "port")
}

// TestSettings: every server has the settings of Config.settings, written
// at each start (a cluster started again runs with the new ones); only
// NoFsync and SynchronousCommit vary.
func TestSettings(t *testing.T) {
	cfg := Config{DataDir: filepath.Join(tempDir(t), "pg"), NoFsync: true, SynchronousCommit: "off"}
	s := start(t, cfg)
	for setting, want := range map[string]string{"transaction_isolation": "serializable", "max_connections": "300",
		"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"} {
		if got := show(t, s.URL(), setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = start(t, Config{DataDir: cfg.DataDir}) // dev mode's: durable
	for setting, want := range map[string]string{"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on"} {
		if got := show(t, s.URL(), setting); got != want {
			t.Errorf("started again as dev mode: %s = %q, want %q", setting, got, want)
		}
	}
}

// TestFresh: a fresh start removes the cluster's data, unless its server
// runs, which is adopted as it is.
func TestFresh(t *testing.T) {
	cfg := Config{DataDir: filepath.Join(tempDir(t), "pg"), NoFsync: true}
	s := start(t, cfg)
	exec := func(url, sql string) error {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		_, err = c.Exec(context.Background(), sql)
		return err
	}
	if err := exec(s.URL(), "CREATE TABLE kept (a int)"); err != nil {
		t.Fatal(err)
	}
	cfg.Fresh = true
	s = start(t, cfg) // running: adopted
	if err := exec(s.URL(), "SELECT * FROM kept"); err != nil {
		t.Fatalf("a fresh start adopting the running server lost its data: %v", err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := Find(cfg); err != nil || ok {
		t.Fatalf("Find after Stop = %v, %v; want not running", ok, err)
	}
	s = start(t, cfg)
	if err := exec(s.URL(), "SELECT * FROM kept"); err == nil {
		t.Fatal("a fresh start of a stopped cluster kept its data")
	}
}
