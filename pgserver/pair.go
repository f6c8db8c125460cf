package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate/internal/proc"
)

// Pair is a primary with a synchronous streaming standby: two clusters
// (Config.DataDir, node 1, and Config.StandbyDataDir, node 2), what a
// replicated database looks like to idemgate, small enough for a test.
//
// Which node is which is read from the clusters on disk, never kept in
// memory only, so that separate commands (scripts/pg.sh kill-primary,
// promote, rejoin) act on the same pair: the standby is the node whose
// cluster holds standby.signal; the primary is the running node without
// it. Each node names the other in synchronous_standby_names and in
// primary_conninfo (Config.settings); PostgreSQL uses the one its role
// needs.
//
// The methods are what an orchestrator (Patroni, a Kubernetes operator)
// does, one step at a time, so that a test can put a failure between any
// two: KillPrimary, Promote, Rejoin.
type Pair struct {
	nodes [2]*Server
	cfg   Config
}

// The nodes' names: cluster_name, and the application_name the standby
// streams as, which the primary's synchronous_standby_names names.
var nodeNames = [2]string{"node1", "node2"}

// signalFile marks a cluster as a standby (PostgreSQL 12 and later).
const signalFile = "standby.signal"

// OpenPair is the pair on cfg's two clusters, as they are (nothing is
// started or stopped).
func OpenPair(cfg Config) (*Pair, error) {
	if cfg.StandbyDataDir == "" {
		return nil, errors.New("pgserver: a pair needs StandbyDataDir")
	}
	p := &Pair{cfg: cfg}
	for i := range p.nodes {
		c := cfg
		if i == 1 {
			c.DataDir, c.Port = cfg.StandbyDataDir, cfg.StandbyPort
		}
		s, err := open(c)
		if err != nil {
			return nil, err
		}
		s.peer = &peering{name: nodeNames[i]}
		// The socket's folder and port are known before the server runs:
		// the peer streams from there, and URL names both nodes.
		s.port, _ = s.listenOn()
		if s.socket, err = s.socketDir(s.port); err != nil {
			return nil, err
		}
		p.nodes[i] = s
	}
	p.cfg = p.nodes[0].cfg
	for i, s := range p.nodes {
		peer := p.nodes[1-i]
		s.peer.conninfo = fmt.Sprintf("host=%s port=%d user=postgres application_name=%s", peer.socket, peer.port, nodeNames[i])
	}
	return p, nil
}

// StartPair starts a primary (node 1) and its synchronous standby (node
// 2, a base backup of node 1), and returns once the standby streams and
// the primary waits for it at each commit. Clusters that exist already
// (Fresh false) are started as they are, each in the role its cluster
// says; a pair left with two primaries (a promotion, the old primary not
// yet rejoined) is refused: Rejoin says which one gives way.
func StartPair(ctx context.Context, cfg Config) (*Pair, error) {
	p, err := OpenPair(cfg)
	if err != nil {
		return nil, err
	}
	up := [2]bool{}
	for i, s := range p.nodes {
		_, _, up[i] = s.running()
	}
	if cfg.Fresh && !up[0] && !up[1] {
		for _, s := range p.nodes {
			if err := os.RemoveAll(s.dir); err != nil {
				return nil, fmt.Errorf("pgserver: %w", err)
			}
		}
	}
	if !p.nodes[0].initialised() && !p.nodes[1].initialised() {
		return p, p.create(ctx)
	}
	primary, standby, err := p.roles()
	if err != nil {
		return nil, err
	}
	if _, _, ok := primary.running(); !ok {
		if err := primary.start(ctx); err != nil {
			return nil, err
		}
	}
	if !standby.initialised() {
		return p, p.join(ctx, primary, standby)
	}
	if _, _, ok := standby.running(); !ok {
		if err := standby.start(ctx); err != nil {
			return nil, err
		}
	}
	return p, p.waitSync(ctx, primary, standby)
}

// create makes the pair from nothing: node 1 a new cluster with the
// database, node 2 its base backup.
func (p *Pair) create(ctx context.Context) error {
	primary, standby := p.nodes[0], p.nodes[1]
	if err := primary.initIfNeeded(ctx); err != nil {
		return err
	}
	// No synchronous standby yet: the CREATE DATABASE would wait for it.
	if err := primary.start(ctx); err != nil {
		return err
	}
	if err := primary.ensureDatabase(ctx); err != nil {
		return err
	}
	return p.join(ctx, primary, standby)
}

// join makes standby a base backup of primary, starts it streaming and
// names it the primary's synchronous standby.
func (p *Pair) join(ctx context.Context, primary, standby *Server) error {
	if err := os.RemoveAll(standby.dir); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if err := standby.mkdir(); err != nil {
		return err
	}
	// pg_basebackup copies the cluster as it is while it takes writes,
	// with the WAL that makes the copy consistent (-X stream), after an
	// immediate checkpoint (-c fast) so that it starts at once.
	cmd := exec.CommandContext(ctx, filepath.Join(p.cfg.BinDir, "pg_basebackup"), "-D", standby.dir,
		"-d", fmt.Sprintf("host=%s port=%d user=postgres", primary.socket, primary.port), "-X", "stream", "-c", "fast")
	if out, err := primary.run(cmd); err != nil {
		return fmt.Errorf("pgserver: pg_basebackup: %w: %s", err, lastLines(out, 5))
	}
	standby.logger.Info("made the standby from a base backup of the primary", "standby", standby.dir, "primary", primary.dir)
	return p.follow(ctx, primary, standby)
}

// follow starts standby (a copy of primary's cluster, or a rewound old
// primary) as primary's streaming standby, then makes primary wait for it
// at each commit.
func (p *Pair) follow(ctx context.Context, primary, standby *Server) error {
	if err := standby.writeFile(signalFile, ""); err != nil {
		return err
	}
	// The copy (pg_basebackup's, pg_rewind's) holds the primary's socket
	// lock file, the primary's socket being in its cluster's folder: the
	// standby would take it for a server of its own still running.
	locks, _ := filepath.Glob(filepath.Join(standby.dir, ".s.PGSQL.*.lock"))
	for _, l := range locks {
		if err := os.Remove(l); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	if err := standby.start(ctx); err != nil {
		return err
	}
	return p.waitSync(ctx, primary, standby)
}

// waitSync names standby in primary's synchronous_standby_names, once it
// streams, and waits until the primary reports it synchronous: from then
// on every commit on the primary is on both.
func (p *Pair) waitSync(ctx context.Context, primary, standby *Server) error {
	if err := waitFor(ctx, primary.AdminURL(), "the standby streams", `SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, standby.peer.name); err != nil {
		return err
	}
	primary.peer.syncStandby = standby.peer.name
	if err := primary.reload(ctx); err != nil {
		return err
	}
	if err := waitFor(ctx, primary.AdminURL(), "the standby is synchronous", `SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND sync_state = 'sync'`, standby.peer.name); err != nil {
		return err
	}
	primary.logger.Info("the standby streams, and the primary waits for it at each commit", "primary", primary.dir, "standby", standby.dir)
	return nil
}

// Primary is the running node that is not a standby; nil when none runs.
func (p *Pair) Primary() *Server {
	for _, s := range p.nodes {
		if _, _, ok := s.running(); ok && !s.isStandby() {
			return s
		}
	}
	return nil
}

// Standby is the node whose cluster is a standby's (running or not); nil
// when there is none (after a promotion, until Rejoin).
func (p *Pair) Standby() *Server {
	for _, s := range p.nodes {
		if s.isStandby() {
			return s
		}
	}
	return nil
}

// Nodes are node 1 and node 2, whatever their roles.
func (p *Pair) Nodes() [2]*Server { return p.nodes }

// URL names both nodes, node 1 first, with target_session_attrs=read-write:
// a client (libpq, pgx) tries them in order and keeps the first that
// takes writes, the primary, wherever it is now. On TCP when the nodes
// have ports (postgres://postgres@127.0.0.1:P1,127.0.0.1:P2/idemgate?...),
// else on their Unix sockets (host=/socket1,/socket2&port=5432,5432).
func (p *Pair) URL() string { return p.url(p.cfg.Database) }

func (p *Pair) url(database string) string {
	a, b := p.nodes[0], p.nodes[1]
	q := url.Values{"sslmode": {"disable"}, "target_session_attrs": {"read-write"}}
	u := &url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + database}
	if a.cfg.Port != 0 && b.cfg.Port != 0 {
		u.Host = fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", a.port, b.port)
	} else {
		q.Set("host", a.socket+","+b.socket)
		q.Set("port", fmt.Sprintf("%d,%d", a.port, b.port))
	}
	u.RawQuery = q.Encode()
	// Commas and slashes read better unescaped, and both parsers take them.
	return strings.NewReplacer("%2C", ",", "%2F", "/").Replace(u.String())
}

// Stop stops both nodes (fast shutdown), standby last, so that it has
// the primary's last commits; a node that is not running is skipped.
func (p *Pair) Stop(ctx context.Context) error {
	var errs []error
	for _, s := range []*Server{p.Primary(), p.Standby()} {
		if s == nil {
			continue
		}
		if _, _, ok := s.running(); ok {
			errs = append(errs, s.Stop(ctx))
		}
	}
	return errors.Join(errs...)
}

// KillPrimary kills the primary as a lost machine dies: SIGKILL to the
// postmaster and to every one of its children (backends, WAL sender,
// checkpointer...), at once, so that no backend outlives it to finish a
// transaction. Each child of a postmaster leads a session of its own
// (PostgreSQL calls setsid in every child, so that it can signal the
// child's own children), so the postmaster's process group holds the
// postmaster alone: the children are found by their parent, with the
// postmaster stopped first (SIGSTOP) so that it forks none meanwhile.
// It returns once none of them runs and the socket refuses connections:
// a fresh-clone CI run's Promote, right after a kill of the group alone,
// still found the primary answering. Its commits are on the standby:
// synchronous_commit = on returned each only once the standby had
// flushed it.
func (p *Pair) KillPrimary() error {
	s := p.Primary()
	if s == nil {
		return errors.New("pgserver: no primary is running")
	}
	pid, err := s.postmasterPID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pgserver: stop the postmaster %d: %w", pid, err)
	}
	procs := append(proc.Children(pid), pid)
	for _, q := range procs {
		if err := syscall.Kill(q, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pgserver: kill -9 %d: %w", q, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		alive := slices.ContainsFunc(procs, proc.Alive)
		if _, _, answers := s.running(); !alive && !answers {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgserver: the primary (postmaster %d and its %d children) outlived kill -9 for 30s", pid, len(procs)-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.logger.Info("killed the primary (kill -9 of its postmaster and its children)", "cluster", s.dir, "pid", pid, "children", len(procs)-1)
	return nil
}

// Promote makes the standby the primary, and returns once it takes
// writes (a new connection finds transaction_read_only off, as
// target_session_attrs=read-write asks). It refuses while the primary
// runs: two primaries would both take writes (split brain); a failover
// kills, or loses, the primary first.
//
// The promoted node waits for no standby (synchronous_standby_names
// empty) until Rejoin gives it one: with its peer down, a COMMIT would
// wait for ever. Until then a commit is on one node only, as with an
// orchestrator's non-strict synchronous mode (Patroni's default).
func (p *Pair) Promote(ctx context.Context) error {
	if s := p.Primary(); s != nil {
		return fmt.Errorf("pgserver: the primary (%s) still runs; kill it first, or two primaries would take writes", s.dir)
	}
	s := p.Standby()
	if s == nil {
		return errors.New("pgserver: no standby to promote")
	}
	if _, _, ok := s.running(); !ok {
		return fmt.Errorf("pgserver: the standby (%s) is not running", s.dir)
	}
	s.peer.syncStandby = ""
	if err := s.reload(ctx); err != nil {
		return err
	}
	if err := s.pgctl(ctx, "promote", "-D", s.dir, "-w", "-t", "60"); err != nil {
		return err
	}
	if err := waitFor(ctx, s.AdminURL(), "the promoted node takes writes", `SELECT count(*) WHERE NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'`); err != nil {
		return err
	}
	s.logger.Info("promoted the standby: it is the primary", "cluster", s.dir)
	return nil
}

// Rejoin brings the old primary (the node that is neither running nor a
// standby) back as the new primary's synchronous standby. pg_rewind
// first: it undoes what the old primary wrote after the promotion's
// point (commits no client was told of, since none reached the standby)
// and copies what changed on the new one, far less than a whole copy.
// If pg_rewind cannot (WAL it needs is gone, a cluster damaged), a fresh
// base backup replaces the old cluster. Once it streams, the primary
// waits for it again at each commit.
func (p *Pair) Rejoin(ctx context.Context) error {
	primary := p.Primary()
	if primary == nil {
		return errors.New("pgserver: no primary is running to rejoin")
	}
	old := p.nodes[0]
	if old == primary {
		old = p.nodes[1]
	}
	if _, _, ok := old.running(); ok {
		return fmt.Errorf("pgserver: %s runs already", old.dir)
	}
	if old.isStandby() {
		// A standby that was down: it streams again once started.
		return p.follow(ctx, primary, old)
	}
	if err := old.clearStaleLocks(); err != nil {
		return err
	}
	// pg_rewind reads the new primary's timeline from its control file,
	// which a promotion updates only at its next checkpoint: before it,
	// pg_rewind sees one timeline, says "no rewind required", and the old
	// primary cannot follow (Patroni checkpoints first too).
	if err := exec1(ctx, primary.AdminURL(), "CHECKPOINT"); err != nil {
		return fmt.Errorf("pgserver: checkpoint on the new primary: %w", err)
	}
	// pg_rewind runs the old primary's crash recovery itself (it was
	// killed, not shut down) before it compares the two histories.
	cmd := exec.CommandContext(ctx, filepath.Join(p.cfg.BinDir, "pg_rewind"), "--target-pgdata", old.dir,
		"--source-server", fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", primary.socket, primary.port))
	out, err := old.run(cmd)
	if err != nil {
		old.logger.Warn("pg_rewind failed; making the old primary a fresh base backup instead", "cluster", old.dir, "err", err, "output", lastLines(out, 5))
		return p.join(ctx, primary, old)
	}
	old.logger.Info("rewound the old primary to the new primary's history", "cluster", old.dir, "pg_rewind", lastLines(out, 3))
	return p.follow(ctx, primary, old)
}

// clearStaleLocks removes the lock files of a server that no longer runs:
// postmaster.pid and its socket's lock. PostgreSQL removes them itself
// when their process is gone, but not when it is a zombie, which it stays
// where the machine's init reaps no orphans (some containers'), and a
// killed postmaster is an orphan.
func (s *Server) clearStaleLocks() error {
	pid, err := s.postmasterPID()
	if err != nil || proc.GroupAlive(pid) {
		return nil // no lock, or a live server: PostgreSQL decides
	}
	for _, f := range []string{filepath.Join(s.dir, "postmaster.pid"), filepath.Join(s.socket, fmt.Sprintf(".s.PGSQL.%d.lock", s.port))} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	return nil
}

// roles are the nodes' roles as their clusters say: exactly one without
// standby.signal, the primary.
func (p *Pair) roles() (primary, standby *Server, err error) {
	a, b := p.nodes[0], p.nodes[1]
	switch {
	case !b.initialised() || b.isStandby() && !a.isStandby():
		return a, b, nil
	case a.isStandby() && !b.isStandby():
		return b, a, nil
	case a.isStandby() && b.isStandby():
		return nil, nil, errors.New("pgserver: both nodes are standbys; promote one")
	}
	return nil, nil, errors.New("pgserver: both nodes are primaries (a promotion, the old primary not rejoined); start the promoted one alone and Rejoin the other")
}

// reload writes the settings again (a pair's synchronous_standby_names
// changes with the roles) and makes a running server read them.
func (s *Server) reload(ctx context.Context) error {
	port, listen := s.listenOn()
	if err := s.writeConf(port, listen, s.socket); err != nil {
		return err
	}
	if _, _, ok := s.running(); !ok {
		return nil
	}
	return s.pgctl(ctx, "reload", "-D", s.dir)
}

func (s *Server) initialised() bool {
	_, err := os.Stat(filepath.Join(s.dir, "PG_VERSION"))
	return err == nil
}

func (s *Server) isStandby() bool {
	_, err := os.Stat(filepath.Join(s.dir, signalFile))
	return err == nil
}

// writeFile writes a file in the cluster, owned by the server's account.
func (s *Server) writeFile(name, text string) error {
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if s.runAs != nil {
		if err := os.Chown(path, int(s.runAs.Uid), int(s.runAs.Gid)); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	return nil
}

func (s *Server) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgserver: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("pgserver: postmaster.pid: %w", err)
	}
	return pid, nil
}

// waitFor polls a counting query on url until it counts more than
// nothing, or ctx ends.
func waitFor(ctx context.Context, url, what, query string, args ...any) error {
	var last error
	for {
		n, err := count(ctx, url, query, args...)
		if err == nil && n > 0 {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgserver: waiting until %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func count(ctx context.Context, url, query string, args ...any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	// Read-only and not serializable: a hot standby refuses SERIALIZABLE,
	// the servers' default.
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var n int
	err = tx.QueryRow(ctx, query, args...).Scan(&n)
	return n, err
}

// exec1 runs one statement on url.
func exec1(ctx context.Context, url, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, sql)
	return err
}
