package hostile

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idemgate/idemgate/internal/proc"
	"github.com/idemgate/idemgate/pgserver"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// ownPG is a PostgreSQL server of one test's own, which it may freeze or
// stop without touching the databases of the other tests.
type ownPG struct {
	t      *testing.T
	cfg    pgserver.Config
	srv    *pgserver.Server
	mu     sync.Mutex
	frozen []int // the processes stopped by freeze
}

// startOwnPG starts a fresh server in a folder of its own, migrated with
// the binary's schema; it is stopped and removed when the test ends.
func startOwnPG(t *testing.T) *ownPG {
	t.Helper()
	dir := testenv.DataDir(t, "hostile-pg")
	p := &ownPG{t: t, cfg: pgserver.Config{DataDir: filepath.Join(dir, "pg"), Logger: testenv.Quiet, NoFsync: true}}
	p.start()
	t.Cleanup(func() {
		p.thaw()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.srv.Stop(ctx); err != nil && p.running() {
			t.Errorf("stop the test's PostgreSQL: %v", err)
		}
	})
	db, err := sqldb.Open(context.Background(), p.URL(), sqldb.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(context.Background(), migrations(t)...); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *ownPG) start() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgserver.Start(ctx, p.cfg)
	if err != nil {
		p.t.Fatalf("the test's PostgreSQL: %v", err)
	}
	p.srv = srv
}

// URL is the server's idemgate database.
func (p *ownPG) URL() string { return p.srv.URL() }

// postmaster reads the server's pid from postmaster.pid (0: none).
func (p *ownPG) postmaster() int {
	b, err := os.ReadFile(filepath.Join(p.cfg.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

func (p *ownPG) running() bool {
	pid := p.postmaster()
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// freeze stops the postmaster, then every server process, with SIGSTOP:
// the database hangs (connections open, nothing answers), as on a stuck
// disk or a paused VM.
func (p *ownPG) freeze() {
	p.t.Helper()
	pm := p.postmaster()
	if pm == 0 {
		p.t.Fatal("freeze: no postmaster.pid")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		p.t.Fatalf("SIGSTOP the postmaster: %v", err)
	}
	p.frozen = append(p.frozen, pm)
	// The postmaster stopped, no new backend appears; stop the others.
	for _, c := range proc.Children(pm) {
		if syscall.Kill(c, syscall.SIGSTOP) == nil {
			p.frozen = append(p.frozen, c)
		}
	}
}

// thaw resumes what freeze stopped (the children first). It is called
// again at cleanup, so that a failed test never leaves a frozen server.
func (p *ownPG) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.frozen) - 1; i >= 0; i-- {
		_ = syscall.Kill(p.frozen[i], syscall.SIGCONT)
	}
	p.frozen = nil
}

// down stops the server (fast shutdown): connections are refused.
func (p *ownPG) down() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.srv.Stop(ctx); err != nil {
		p.t.Fatalf("stop the test's PostgreSQL: %v", err)
	}
}

// up starts the server again on its data and socket (the same URL).
func (p *ownPG) up() { p.start() }
