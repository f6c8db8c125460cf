package chaos

// The chaos test's own backends, on ports and folders of their own, so
// that they never meet the suite's servers: a real Kafka broker started
// with scripts/kafka.sh, and a PostgreSQL server started by pgserver,
// with the settings of every test server (as scripts/pg.sh's).

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	sysproc "github.com/idemgate/idemgate/internal/proc"
	"github.com/idemgate/idemgate/pgserver"
	"github.com/idemgate/idemgate/testenv"
)

// script runs scripts/<name> <arg> (its words: "kill 2") with the chaos
// backends' settings and extra environment, and returns its stdout (one
// KEY=VALUE line); its stderr goes to scripts.log.
func (r *run) script(name, arg string, extra ...string) (string, error) {
	cmd := exec.Command(filepath.Join(r.root, "scripts", name), strings.Fields(arg)...)
	cmd.Env = append(os.Environ(),
		"KAFKA_PORT="+strconv.Itoa(r.cfg.kafkaPort),
		"KAFKA_CONTROLLER_PORT="+strconv.Itoa(r.cfg.kafkaPort+1),
		"KAFKA_RUN_DIR="+r.kafkaDir,
	)
	if r.cl != nil {
		cmd.Env = append(cmd.Env, r.cl.kafkaEnv...) // three nodes behind their proxies
	}
	cmd.Env = append(cmd.Env, extra...)
	var out bytes.Buffer
	cmd.Stdout = &out
	logf, err := os.OpenFile(filepath.Join(r.logDir, "scripts.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "chaos: --- t+%.1fs %s %s ---\n", r.since(), name, arg)
	cmd.Stderr = logf
	err = cmd.Run()
	if err != nil {
		return "", fmt.Errorf("scripts/%s %s: %w (see %s)", name, arg, err, logf.Name())
	}
	return strings.TrimSpace(out.String()), nil
}

// valueOf reads KEY=VALUE.
func valueOf(line, key string) (string, error) {
	v, ok := strings.CutPrefix(line, key+"=")
	if !ok {
		return "", fmt.Errorf("expected %s=..., got %q", key, line)
	}
	return v, nil
}

// startBackends starts a fresh broker and a fresh PostgreSQL (stopping
// any left over by an earlier run on the same folders) and stops both
// when the test ends.
func (r *run) startBackends() {
	t := r.t
	r.stopBackendsBeforeAndAfter(func(ctx context.Context) error {
		srv, ok, err := pgserver.Find(r.pgConfig())
		if err != nil || !ok {
			return err
		}
		return srv.Stop(ctx)
	})
	start := time.Now()
	fresh := r.pgConfig()
	fresh.Fresh = true
	if err := r.startPG(fresh); err != nil {
		t.Fatalf("PostgreSQL did not start: %v\n%s", err, r.tail(filepath.Join(r.logDir, "postgres.log"), 30))
	}
	r.dbURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/idemgate?sslmode=disable", r.cfg.pgPort)
	line, err := r.script("kafka.sh", "start", "KAFKA_FRESH=1")
	if err != nil {
		t.Fatalf("Kafka did not start: %v\n%s", err, r.tail(filepath.Join(r.logDir, "scripts.log"), 30))
	}
	if r.brokers, err = valueOf(line, "KAFKA_BROKERS"); err != nil {
		t.Fatal(err)
	}
	r.logf("backends up in %v: %s, %s", time.Since(start).Round(time.Millisecond), r.dbURL, r.brokers)
}

// stopBackendsBeforeAndAfter stops the broker (or cluster) and the
// PostgreSQL server (stopPG) left over by an earlier run on the same
// folders, and stops both again when the test ends.
func (r *run) stopBackendsBeforeAndAfter(stopPG func(context.Context) error) {
	t := r.t
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return stopPG(ctx)
	}
	_, _ = r.script("kafka.sh", "stop")
	_ = stop()
	t.Cleanup(func() {
		if _, err := r.script("kafka.sh", "stop"); err != nil {
			t.Logf("stop Kafka: %v", err)
		}
		if err := stop(); err != nil {
			t.Logf("stop PostgreSQL: %v", err)
		}
	})
}

// pgConfig is the PostgreSQL server's: the tests' settings (NoFsync),
// on the run's port and folder; pgserver logs to postgres.log.
func (r *run) pgConfig() pgserver.Config {
	log := appendFile(filepath.Join(r.logDir, "postgres.log"))
	return pgserver.Config{DataDir: filepath.Join(r.pgDir, "data"), Port: r.cfg.pgPort, NoFsync: true,
		Logger: slog.New(slog.NewTextHandler(log, nil))}
}

// appendFile is a file written to by appending, opened for each write.
type appendFile string

func (f appendFile) Write(b []byte) (int, error) {
	file, err := os.OpenFile(string(f), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	return file.Write(b)
}

// startPG starts the PostgreSQL server (pgserver.Start).
func (r *run) startPG(cfg pgserver.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := pgserver.Start(ctx, cfg)
	return err
}

// restartKafka restarts the broker, keeping its data (scripts/kafka.sh
// restart: TERM, then start on the same log).
func (r *run) restartKafka() {
	r.logf("CHAOS: restarting the Kafka broker")
	r.outagesNow.Add(1)
	defer r.outagesNow.Add(-1)
	start := time.Now()
	if _, err := r.script("kafka.sh", "restart"); err != nil {
		r.fail("backend", "Kafka restart: %v", err)
		return
	}
	r.backUp(&r.kafkaOut, "Kafka broker", start)
}

// outage counts a backend's restarts and the time it was down.
type outage struct {
	restarts int
	down     time.Duration
}

// backUp records that a backend whose outage began at start is back.
func (r *run) backUp(o *outage, name string, start time.Time) {
	took := time.Since(start)
	r.mu.Lock()
	o.restarts++
	o.down += took
	r.mu.Unlock()
	r.logf("CHAOS: %s back after %v", name, took.Round(time.Millisecond))
}

// crashPostgres kills the postmaster and every server process with -9
// (a server crash: no shutdown checkpoint, WAL recovery at the next
// start), keeps it down for hold, then starts it again on the same data
// (pgserver.Start, which finds the stale pid file).
func (r *run) crashPostgres(hold time.Duration) {
	r.logf("CHAOS: kill -9 of PostgreSQL")
	r.outagesNow.Add(1)
	defer r.outagesNow.Add(-1)
	start := time.Now()
	b, err := os.ReadFile(filepath.Join(r.pgDir, "data", "postmaster.pid"))
	if err != nil {
		r.fail("backend", "read postmaster.pid: %v", err)
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		r.fail("backend", "postmaster.pid: %v", err)
		return
	}
	children := sysproc.Children(pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	if err := testenv.Poll(context.Background(), 5*time.Second, func() error {
		return testenv.Check(syscall.Kill(pid, 0) != nil, "the postmaster (pid %d) lives", pid)
	}); err != nil {
		r.logf("CHAOS: %v", err)
	}
	r.logf("CHAOS: killed the postmaster (pid %d) and %d server processes; down for %v", pid, len(children), hold)
	time.Sleep(hold) // the outage itself
	if err := r.startPG(r.pgConfig()); err != nil {
		r.fail("backend", "PostgreSQL restart: %v", err)
		return
	}
	r.backUp(&r.pgOut, "PostgreSQL", start)
}

// tail returns the last n lines of a file.
func (r *run) tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
