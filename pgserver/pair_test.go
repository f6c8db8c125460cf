package pgserver

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPairFailover: a committed row is on the standby (synchronous
// commit); after the primary's kill -9 and the standby's promotion the
// pair's URL (both hosts, target_session_attrs=read-write) reaches the
// new primary, which takes writes; the old primary rejoins as its
// synchronous standby and has what was written meanwhile.
func TestPairFailover(t *testing.T) {
	dir := tempDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := Config{DataDir: filepath.Join(dir, "a"), StandbyDataDir: filepath.Join(dir, "b"), NoFsync: true,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	p, err := StartPair(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range p.Nodes() {
				b, _ := os.ReadFile(filepath.Join(n.dir, "server.log"))
				t.Logf("--- %s server.log ---\n%s", n.dir, lastLines(b, 150))
			}
		}
		_ = p.Stop(context.Background())
	})
	first, standby := p.Primary(), p.Standby()
	if first != p.Nodes()[0] || standby != p.Nodes()[1] {
		t.Fatalf("primary %v, standby %v: want node 1, node 2", first, standby)
	}
	if got := show(t, first.URL(), "synchronous_standby_names"); got != "node2" {
		t.Fatalf("synchronous_standby_names = %q", got)
	}
	for setting, want := range map[string]string{"wal_log_hints": "on", "full_page_writes": "on", "fsync": "off"} {
		if got := show(t, first.URL(), setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	exec := func(url, sql string) {
		t.Helper()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	rows := func(url string) int {
		t.Helper()
		n, err := count(ctx, url, "SELECT count(*) FROM kept")
		if err != nil {
			t.Fatalf("count on %s: %v", url, err)
		}
		return n
	}
	exec(p.URL(), "CREATE TABLE kept (a int)")
	exec(p.URL(), "INSERT INTO kept VALUES (1)")
	// No wait: the commit returned only once the standby had flushed it,
	// and a hot standby applies what it flushed at once (remote_apply is
	// not asked, so allow the apply a moment).
	if err := waitFor(ctx, standby.URL(), "the standby has the row", "SELECT count(*) FROM kept"); err != nil {
		t.Fatal(err)
	}

	if err := p.KillPrimary(); err != nil {
		t.Fatal(err)
	}
	if err := p.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Primary() != standby || p.Standby() != nil {
		t.Fatalf("after promotion: primary %v, standby %v", p.Primary(), p.Standby())
	}
	if n := rows(p.URL()); n != 1 {
		t.Fatalf("the promoted node has %d rows, want 1", n)
	}
	exec(p.URL(), "INSERT INTO kept VALUES (2)") // one copy: no standby to wait for

	if err := p.Rejoin(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Standby() != first || p.Primary() != standby {
		t.Fatalf("after rejoin: primary %v, standby %v", p.Primary(), p.Standby())
	}
	if got := show(t, standby.URL(), "synchronous_standby_names"); got != "node1" {
		t.Fatalf("the new primary's synchronous_standby_names = %q", got)
	}
	exec(p.URL(), "INSERT INTO kept VALUES (3)")
	if err := waitFor(ctx, first.URL(), "the rejoined node has the three rows", "SELECT count(*) FROM kept HAVING count(*) = 3"); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
