// Package pgserver runs a private PostgreSQL server from the machine's
// server binaries (initdb, pg_ctl): the database of the embedded dev mode
// and of tests when no DATABASE_URL is given.
//
// The server listens on a Unix socket in a folder of its own (the
// cluster's), not on a TCP port: no port is picked, so none can be taken
// by another process between the pick and the server's bind, and a
// server stopped and started again is found at the same address. A TCP
// port on 127.0.0.1 is opened only when Config.Port asks for one.
//
// PostgreSQL refuses to run as root. When the process is root, the server
// runs as the unprivileged "postgres" account, and its data folder is
// owned by that account.
//
// It is the one way idemgate starts PostgreSQL: dev mode, the tests'
// private server (testenv), the tests that run a server of their own
// (hostile, chaos) and the scripts (scripts/pg.sh, through the command
// pgserver/cmd/pgserver) all start it here, with the settings written
// once (Config.settings), each with its reason.
package pgserver

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config says where the server keeps its data and where it listens.
type Config struct {
	// DataDir is the cluster's folder; it is created and initialised when
	// it holds no cluster yet, and reused (with its data) otherwise.
	DataDir string
	// Port, when not 0, is a TCP port on 127.0.0.1 the server listens on
	// besides its Unix socket (for tools that only speak TCP). 0, the
	// default: the Unix socket only (see URL).
	Port int
	// Database is created if missing. Default "idemgate".
	Database string
	// Logger receives one line per step; default slog.Default().
	Logger *slog.Logger
	// BinDir holds initdb and pg_ctl; default: $PG_BIN, `pg_config
	// --bindir`, or the newest /usr/lib/postgresql/*/bin.
	BinDir string
	// Fresh starts from an empty cluster: one already in DataDir is
	// removed first, unless a server is running on it (which is then
	// adopted, data and all).
	Fresh bool
	// NoFsync turns fsync and full_page_writes off, for tests only: a
	// killed server (kill -9, which the tests do) loses nothing, since
	// its writes are in the kernel's page cache, but a crash of the
	// machine can corrupt the cluster. The default, on, is dev mode's and
	// the benchmarks': a 202 promises a durable claim, so its cost must
	// include the flush to disk.
	NoFsync bool
	// SynchronousCommit is synchronous_commit; default "on". "off" would
	// lose the last ~0.6 s of acknowledged commits when the server is
	// killed, which the chaos test does; with NoFsync, "on" is cheap.
	// In a pair (StartPair) "on" also waits for the synchronous standby
	// to have flushed the commit.
	SynchronousCommit string
	// StandbyDataDir and StandbyPort are the second node's cluster and
	// TCP port (0: its Unix socket only); StartPair only. It starts as the
	// standby; after a failover the nodes swap roles (see Pair).
	StandbyDataDir string
	StandbyPort    int
}

// settings are the server's, the same for every server started here;
// only NoFsync and SynchronousCommit vary, as Config says, and, for a
// node of a pair, its peer. They are written at every start (and, in a
// pair, when a failover changes who waits for whom), so a cluster made by
// an older version runs with today's.
func (c Config) settings(p *peering) string {
	fsync, fullPages, sync := "on", "on", c.SynchronousCommit
	if c.NoFsync {
		fsync, fullPages = "off", "off"
	}
	if p != nil {
		// pg_rewind refuses a cluster without full-page writes: it cannot
		// rebuild a page from WAL that does not hold its whole image.
		fullPages = "on"
	}
	if sync == "" {
		sync = "on"
	}
	text := `# Written by idemgate's pgserver at each start: edits here are lost.
# Every transaction SERIALIZABLE, as on CockroachDB, which PostgreSQL
# stands in for: the store's code must retry serialization failures.
default_transaction_isolation = 'serializable'
# The tests run many stacks (each a pool per role) on one server at once.
max_connections = 300
shared_buffers = 128MB
fsync = ` + fsync + `
full_page_writes = ` + fullPages + `
synchronous_commit = ` + sync + `
`
	if p == nil {
		return text
	}
	return text + `# A node of a primary/standby pair (StartPair).
# pg_rewind needs every change to a page logged, hint bits included, to
# find the pages an old primary wrote after the standby's promotion.
wal_log_hints = on
# This node's name, as its peer's synchronous_standby_names names it.
cluster_name = '` + p.name + `'
# Used only while standby.signal exists (the node is the standby): where
# it streams from.
primary_conninfo = '` + p.conninfo + `'
hot_standby = on
# WAL kept for a standby that falls behind or is down for a while, so
# that it catches up by streaming (no replication slot: a slot on a
# primary lost with it would have to be made again on the new one).
wal_keep_size = '256MB'
# A standby tells its primary at once where it is, so that a promotion
# finds it up to date and the primary notices a lost standby soon.
wal_receiver_status_interval = '1s'
wal_sender_timeout = '10s'
wal_receiver_timeout = '10s'
# A standby whose stream broke (its primary lost) tries again, and a
# promotion is noticed, within this time rather than the default 5 s.
wal_retrieve_retry_interval = '200ms'
# Used only while the node is the primary: a COMMIT returns once the
# standby named here has flushed it (synchronous_commit = on), so a
# claim answered 202 survives the primary's loss. Empty (one copy) after
# a promotion until the old primary rejoins: there is no standby to wait
# for, and a COMMIT would wait for ever.
synchronous_standby_names = '` + p.syncStandby + `'
`
}

// peering is what a node of a pair knows of its peer.
type peering struct {
	name        string // this node's (cluster_name, application_name, slot)
	conninfo    string // libpq connection string of the peer, as the primary
	syncStandby string // synchronous_standby_names: the peer's name, or ""
}

// Server is a running private PostgreSQL server.
type Server struct {
	cfg    Config
	dir    string // the real cluster folder (may differ from DataDir, see Start)
	socket string // the folder of the server's Unix socket
	port   int    // the port number: of the TCP port if any, and in the socket's name
	runAs  *syscall.Credential
	logger *slog.Logger
	peer   *peering // a node of a Pair's; nil for a lone server
}

// Start initialises the cluster if needed and starts the server, or
// adopts one already running on the same folder (as after a kill -9 of
// the process that started it).
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s, err := open(cfg)
	if err != nil {
		return nil, err
	}
	cfg = s.cfg
	if _, _, ok := s.running(); !ok {
		if cfg.Port != 0 {
			// Before anything is removed: someone else owns the port.
			if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)), time.Second); err == nil {
				c.Close()
				return nil, fmt.Errorf("pgserver: port %d is in use by another process (not this cluster's server)", cfg.Port)
			}
		}
		if cfg.Fresh {
			if err := os.RemoveAll(s.dir); err != nil {
				return nil, fmt.Errorf("pgserver: %w", err)
			}
		}
	}
	if err := s.initIfNeeded(ctx); err != nil {
		return nil, err
	}
	if socket, port, ok := s.running(); ok {
		s.socket, s.port = socket, port
		cfg.Logger.Info("adopted the PostgreSQL server already running on the cluster", "cluster", s.dir, "socket", socket, "port", port)
	} else {
		if err := s.start(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.ensureDatabase(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// open resolves cfg: the binaries, the cluster's real folder and the
// account the server runs as.
func open(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("pgserver: no data folder given")
	}
	if cfg.Database == "" {
		cfg.Database = "idemgate"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	bin, err := findBinDir(cfg.BinDir)
	if err != nil {
		return nil, err
	}
	cfg.BinDir = bin
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, dir: abs, logger: cfg.Logger}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("pgserver: running as root, and PostgreSQL refuses root: an unprivileged 'postgres' account is needed but none exists")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.runAs = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if !traversableByOthers(filepath.Dir(abs)) {
			// The postgres account cannot reach a folder under, say, /root.
			// Keep the cluster in /tmp under a name derived from the data
			// folder, so that the same --data-dir finds it again.
			sum := sha256.Sum256([]byte(abs))
			s.dir = filepath.Join(os.TempDir(), "idemgate-pg-"+hex.EncodeToString(sum[:6]))
			cfg.Logger.Info("postgres cannot reach the data folder; keeping the cluster in /tmp", "data_dir", abs, "cluster", s.dir)
		}
	}
	return s, nil
}

// Find is the server running on cfg's cluster, if any (ok false: none
// is), without starting one.
func Find(cfg Config) (s *Server, ok bool, err error) {
	if s, err = open(cfg); err != nil {
		return nil, false, err
	}
	s.socket, s.port, ok = s.running()
	return s, ok, nil
}

// URL is the connection string of the server's database, on its Unix
// socket: postgres://postgres@/idemgate?host=/the/socket/folder&port=5432
// (pgx and libpq, psql included, take the same URL).
func (s *Server) URL() string { return s.url(s.cfg.Database) }

// AdminURL connects to the maintenance database "postgres".
func (s *Server) AdminURL() string { return s.url("postgres") }

func (s *Server) url(database string) string {
	q := url.Values{"host": {s.socket}, "port": {strconv.Itoa(s.port)}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + database, RawQuery: q.Encode()}).String()
}

// SocketDir is the folder of the server's Unix socket.
func (s *Server) SocketDir() string { return s.socket }

// Stop shuts the server down (fast mode: open transactions roll back,
// committed data stays).
func (s *Server) Stop(ctx context.Context) error {
	return s.pgctl(ctx, "stop", "-D", s.dir, "-m", "fast", "-w")
}

func (s *Server) initIfNeeded(ctx context.Context) error {
	if s.initialised() {
		return nil
	}
	if err := s.mkdir(); err != nil {
		return err
	}
	if s.runAs != nil {
		s.logger.Info("initialising a PostgreSQL cluster as the unprivileged 'postgres' user (PostgreSQL refuses to run as root)", "cluster", s.dir)
	} else {
		s.logger.Info("initialising a PostgreSQL cluster", "cluster", s.dir)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(s.cfg.BinDir, "initdb"), "-D", s.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C")
	if out, err := s.run(cmd); err != nil {
		return fmt.Errorf("pgserver: initdb: %w: %s", err, lastLines(out, 5))
	}
	return nil
}

// mkdir makes the cluster's folder, owned by the server's account.
func (s *Server) mkdir() error {
	// The parent stays searchable by others so that the postgres account
	// can reach the cluster below it.
	if err := os.MkdirAll(filepath.Dir(s.dir), 0o755); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if s.runAs != nil {
		if err := os.Chown(s.dir, int(s.runAs.Uid), int(s.runAs.Gid)); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	return nil
}

// confFile holds the settings and where the server listens; it is
// written at each start, and postgresql.conf includes it last, so that
// it overrides what the cluster's own file says.
const confFile = "idemgate.conf"

// includeConf makes postgresql.conf include confFile, once: a cluster
// made by an older version (or by the shell script before this package)
// lacks the line.
func (s *Server) includeConf() error {
	path := filepath.Join(s.dir, "postgresql.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	line := "include_if_exists = '" + confFile + "'"
	if strings.Contains(string(b), line) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	defer f.Close()
	_, err = f.WriteString("\n" + line + "\n")
	return err
}

// defaultPort names the Unix socket (.s.PGSQL.5432) when no TCP port is
// asked for; the socket's folder is the server's own, so no other server
// can hold that name.
const defaultPort = 5432

func (s *Server) start(ctx context.Context) error {
	port, listen := s.listenOn()
	socket, err := s.socketDir(port)
	if err != nil {
		return err
	}
	if err := s.writeConf(port, listen, socket); err != nil {
		return err
	}
	// Tried again: after a crash (kill -9), the old server's processes
	// may hold its shared memory or its port for a moment.
	for attempt := 1; ; attempt++ {
		err := s.pgctl(ctx, "start", "-D", s.dir, "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "60")
		if err == nil {
			break
		}
		if _, _, up := s.running(); up || attempt == 5 || ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("%w; server.log: %s", err, lastLines(log, 5))
		}
		s.logger.Info("pg_ctl start failed; trying again in 1s", "attempt", attempt, "err", err)
		time.Sleep(time.Second)
	}
	s.socket, s.port = socket, port
	who := "the current user"
	if s.runAs != nil {
		who = "the unprivileged 'postgres' user (PostgreSQL refuses to run as root)"
	}
	if listen == "" {
		s.logger.Info("started PostgreSQL as "+who, "cluster", s.dir, "socket", socket)
	} else {
		s.logger.Info("started PostgreSQL as "+who, "cluster", s.dir, "socket", socket, "port", port)
	}
	return nil
}

// writeConf writes confFile: the settings and where the server listens.
func (s *Server) writeConf(port int, listen, socket string) error {
	if err := s.includeConf(); err != nil {
		return err
	}
	conf := filepath.Join(s.dir, confFile)
	text := s.cfg.settings(s.peer) + fmt.Sprintf("listen_addresses = '%s'\nport = %d\nunix_socket_directories = '%s'\n", listen, port, socket)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if s.runAs != nil {
		_ = os.Chown(conf, int(s.runAs.Uid), int(s.runAs.Gid))
	}
	return nil
}

// listenOn is the port and listen address start gives the server.
func (s *Server) listenOn() (port int, listen string) {
	if s.cfg.Port == 0 {
		return defaultPort, ""
	}
	return s.cfg.Port, "127.0.0.1"
}

// maxSocketPath is the longest path of a Unix socket (sun_path holds 108
// bytes with the final NUL).
const maxSocketPath = 107

// socketDir is the folder for the server's socket: the cluster's own
// (a pair's node: a private folder beside it) when the socket's path fits
// in a sockaddr_un, else a folder in /tmp named after the cluster (the
// same at every start), private to the server's account.
func (s *Server) socketDir(port int) (string, error) {
	dir := s.dir
	if s.peer != nil {
		// A pair's node keeps its socket out of its cluster: pg_basebackup
		// and pg_rewind copy a cluster's files, and would copy the socket's
		// lock file (then taken for a running server's) or fail on the
		// socket itself.
		dir = s.dir + ".sock"
	}
	if len(filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", port))) <= maxSocketPath {
		if dir == s.dir {
			return dir, nil
		}
	} else {
		sum := sha256.Sum256([]byte(s.dir))
		dir = filepath.Join(os.TempDir(), "idemgate-pgsock-"+hex.EncodeToString(sum[:6]))
		s.logger.Info("the cluster's path is too long for a Unix socket; the socket is in /tmp", "cluster", s.dir, "socket", dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("pgserver: socket folder: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("pgserver: socket folder: %w", err)
	}
	uid := os.Geteuid()
	if s.runAs != nil {
		if err := os.Chown(dir, int(s.runAs.Uid), int(s.runAs.Gid)); err != nil {
			return "", fmt.Errorf("pgserver: socket folder: %w", err)
		}
		uid = int(s.runAs.Uid)
	}
	// A folder someone else made in /tmp before us is not ours to use.
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("pgserver: socket folder: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != uid || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("pgserver: socket folder %s is not a private folder of the server's account", dir)
	}
	return dir, nil
}

// running reads postmaster.pid: a live postmaster there means the server
// is still up (its starter was killed); its fourth line is the port, its
// fifth the socket's folder. It is adopted once its socket accepts.
func (s *Server) running() (socket string, port int, ok bool) {
	f, err := os.Open(filepath.Join(s.dir, "postmaster.pid"))
	if err != nil {
		return "", 0, false
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 5 {
		return "", 0, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.Atoi(strings.TrimSpace(lines[3]))
	socket = strings.TrimSpace(lines[4])
	if err1 != nil || err2 != nil || socket == "" || syscall.Kill(pid, 0) != nil {
		return "", 0, false
	}
	c, err := net.DialTimeout("unix", filepath.Join(socket, fmt.Sprintf(".s.PGSQL.%d", port)), time.Second)
	if err != nil {
		return "", 0, false
	}
	c.Close()
	return socket, port, true
}

func (s *Server) ensureDatabase(ctx context.Context) error {
	var conn *pgx.Conn
	var err error
	for i := 0; i < 50; i++ {
		conn, err = pgx.Connect(ctx, s.AdminURL())
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("pgserver: connect: %w", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", s.cfg.Database).Scan(&n); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if n == 0 {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.cfg.Database}.Sanitize()); err != nil {
			return fmt.Errorf("pgserver: create database: %w", err)
		}
	}
	return nil
}

func (s *Server) pgctl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.cfg.BinDir, "pg_ctl"), args...)
	if out, err := s.run(cmd); err != nil {
		return fmt.Errorf("pgserver: pg_ctl %s: %w: %s", args[0], err, lastLines(out, 5))
	}
	return nil
}

// run runs cmd as the server's account. Output goes to a file, not a pipe:
// pg_ctl's postmaster must not hold a pipe of ours open.
func (s *Server) run(cmd *exec.Cmd) ([]byte, error) {
	out, err := os.CreateTemp("", "pgserver-*.out")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.runAs != nil {
		if err := os.Chmod(out.Name(), 0o666); err != nil {
			return nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.runAs, Setpgid: true}
		cmd.Env = append(cmd.Env, "HOME="+s.dir)
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	err = cmd.Run()
	text, _ := os.ReadFile(out.Name())
	return text, err
}

func findBinDir(given string) (string, error) {
	candidates := []string{given, os.Getenv("PG_BIN")}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	globbed, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(globbed) - 1; i >= 0; i-- {
		candidates = append(candidates, globbed[i])
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(c, "initdb")); err == nil {
			return c, nil
		}
	}
	return "", errors.New("pgserver: PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql or set PG_BIN")
}

// traversableByOthers reports whether every folder from / down to dir
// lets other users pass (the execute bit for others).
func traversableByOthers(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil && fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
