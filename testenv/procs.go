package testenv

// The one harness that runs idemgate as child processes of a test: the
// binary (built once per test binary), each process's environment, the
// listeners it inherits on held ports, its captured log, readiness by
// observation, and its end (SIGTERM, kill -9), restart and cleanup.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the idemgate binary of this test binary (Binary).
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary is the idemgate binary, built from this module's cmd/idemgate
// the first time a test asks for it (BuildBinary) and shared by every
// later test of the test binary; Run (or Start's stop, or Main) removes
// it.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := BuildBinary()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return path
}

// BuildBinary is Binary for a TestMain, before any test: it builds the
// binary unless it is built already.
func BuildBinary() (string, error) {
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "idemgate-bin-")
		if binary.err != nil {
			return
		}
		path := binary.dir + "/idemgate"
		out, err := exec.Command("go", "build", "-o", path, "github.com/idemgate/idemgate/cmd/idemgate").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build ./cmd/idemgate: %w\n%s", err, out)
			return
		}
		binary.path = path
	})
	return binary.path, binary.err
}

// removeBinary removes the binary Binary built, if any.
func removeBinary() {
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir)
	}
}

// Main runs the tests of a package that starts processes (Binary) but
// needs no backends of the suite, then removes the binary; call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	removeBinary()
	os.Exit(code)
}

// RunBuilt is Run for a package whose tests start the binary (Binary):
// it builds the binary once before the first test, so that no test's
// time pays for the build; with -short (no process starts) it builds
// nothing. Call it from TestMain.
func RunBuilt(m *testing.M, env **Env) {
	if !flag.Parsed() {
		flag.Parse() // testing.Short needs the flags
	}
	if !testing.Short() {
		if _, err := BuildBinary(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
			os.Exit(1)
		}
	}
	Run(m, env)
}

// Proc is a child process of a test, started again after each exit by
// Start: one incarnation at a time. It runs in a process group of its
// own; what it writes goes to Log (or to Output when set). When the test
// ends, a running incarnation is stopped (SIGTERM, and kill -9 of its
// group if it has not exited within 20 s, which fails the test), and the
// log's last lines are shown if the test failed.
type Proc struct {
	Name string
	// Argv is the command line; Argv[0] the program.
	Argv []string
	// Env is set over the test process's environment, from which the
	// backends' (DATABASE_URL, KAFKA_BROKERS) and idemgate's (IDEMGATE_*)
	// settings are removed first: a process sees only what the test
	// gives it. An address of a held port (NewPort) given as
	// IDEMGATE_ADDR, IDEMGATE_METRICS_ADDR or after --addr is passed as
	// a listener on the port that the process inherits (fd:N).
	Env []string
	// Output, when set, receives the output of the next incarnations
	// instead of Log (a log file that outlives the test, say).
	Output io.Writer
	// Log holds the output line by line, over every incarnation.
	Log *Log

	t     testing.TB
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed once the current incarnation has exited
	state *os.ProcessState
}

var warnOrError = regexp.MustCompile(`level=(WARN|ERROR)`)

// NewProc is a process not started yet (Start), stopped when t ends.
func NewProc(t testing.TB, name string, env []string, argv ...string) *Proc {
	p := &Proc{Name: name, Argv: argv, Env: env, Log: &Log{}, t: t}
	t.Cleanup(func() {
		if !p.Stop(20 * time.Second) {
			t.Errorf("%s did not exit within 20s of SIGTERM; killed", p.Name)
		}
		if t.Failed() && p.Output == nil {
			// The tail shows how the process ended; its warnings, what went
			// wrong before (a produce that failed thousands of lines earlier).
			if w := p.Log.Matching(warnOrError, time.Time{}); len(w) > 0 {
				var b strings.Builder
				for _, ln := range w[:min(len(w), 40)] {
					b.WriteString(ln.Text + "\n")
				}
				t.Logf("--- %s log: its warnings and errors (%d, the first 40) ---\n%s", p.Name, len(w), b.String())
			}
			t.Logf("--- %s log (last 60 lines) ---\n%s", p.Name, p.Log.Tail(60))
		}
	})
	return p
}

// StartProc starts a process (NewProc, Start) and fails t if it cannot.
func StartProc(t testing.TB, name string, env []string, argv ...string) *Proc {
	t.Helper()
	p := NewProc(t, name, env, argv...)
	if err := p.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return p
}

// Start starts a new incarnation, with Env and Output as they are now.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.state == nil {
		return fmt.Errorf("%s is running", p.Name)
	}
	var files []*os.File
	defer func() { // the child's copies listen
		for _, f := range files {
			f.Close()
		}
	}()
	inherit := func(addr string) (string, error) {
		port := heldPort(addr)
		if port == nil {
			return addr, nil
		}
		f, err := port.File()
		if err != nil {
			return "", err
		}
		files = append(files, f)
		return "fd:" + strconv.Itoa(2+len(files)), nil
	}
	var err error
	argv := slices.Clone(p.Argv)
	for i := 1; i < len(argv) && err == nil; i++ {
		if argv[i-1] == "--addr" {
			argv[i], err = inherit(argv[i])
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "DATABASE_URL" && k != "KAFKA_BROKERS" && !strings.HasPrefix(k, "IDEMGATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for _, kv := range p.Env {
		if k, v, _ := strings.Cut(kv, "="); err == nil && (k == "IDEMGATE_ADDR" || k == "IDEMGATE_METRICS_ADDR") {
			v, err = inherit(v)
			kv = k + "=" + v
		}
		cmd.Env = append(cmd.Env, kv)
	}
	if err != nil {
		return err
	}
	cmd.ExtraFiles = files
	out := p.Output
	if out == nil {
		out = p.Log
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill -9 of the group ends the children too
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	p.cmd, p.done, p.state = cmd, done, nil
	go func() {
		_ = cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Restart starts p again (Start) once its last incarnation has exited,
// and fails the test if it cannot.
func (p *Proc) Restart() {
	p.t.Helper()
	if err := p.Start(); err != nil {
		p.t.Fatalf("restart %s: %v", p.Name, err)
	}
}

// Pid is the current incarnation's process id (0 before the first start).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Done is closed once the current incarnation has exited.
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Exited reports whether the current incarnation has exited (or none
// was ever started).
func (p *Proc) Exited() bool { return p.State() != nil || p.Pid() == 0 }

// State is how the current incarnation ended; nil while it runs.
func (p *Proc) State() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Signal sends sig to the process alone (not its group).
func (p *Proc) Signal(sig syscall.Signal) error {
	if pid := p.Pid(); pid != 0 {
		return syscall.Kill(pid, sig)
	}
	return errors.New("not started")
}

// Kill kills the process alone with -9 (its children, as dev mode's
// PostgreSQL, live on) and waits for its end.
func (p *Proc) Kill() {
	p.t.Helper()
	p.Log.Note("=== test: kill -9 ===")
	if err := p.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill -9 %s: %v", p.Name, err)
	}
	<-p.Done()
}

// Stop sends SIGTERM and, if the process has not exited within grace,
// kills its group with -9; it reports whether the process exited in
// time. A process that is not running is left as it is.
func (p *Proc) Stop(grace time.Duration) bool {
	if p.Exited() {
		return true
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.Done():
		return true
	case <-time.After(grace):
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.Done()
		return false
	}
}

// Terminate sends SIGTERM and waits for the exit; it returns the exit
// code and how long the process took to exit, and fails the test if it
// does not exit within the given time.
func (p *Proc) Terminate(within time.Duration) (code int, took time.Duration) {
	p.t.Helper()
	start := time.Now()
	if !p.Stop(within) {
		p.t.Fatalf("%s did not exit within %v of SIGTERM", p.Name, within)
	}
	return p.State().ExitCode(), time.Since(start)
}

// WaitLog waits until a line of the output matches re and returns it;
// it fails the test if the process exits first.
func (p *Proc) WaitLog(re *regexp.Regexp, within time.Duration) string {
	p.t.Helper()
	var line string
	Eventually(p.t, within, fmt.Sprintf("%s logs %q", p.Name, re), func() error {
		if ls := p.Log.Matching(re, time.Time{}); len(ls) > 0 {
			line = ls[0].Text
			return nil
		}
		p.mustRun()
		return errors.New("no such line yet")
	})
	return line
}

// WaitReady waits until base + "/readyz" answers 200, and fails the test
// if the process exits first.
func (p *Proc) WaitReady(base string, within time.Duration) {
	p.t.Helper()
	c := &http.Client{Timeout: 3 * time.Second}
	Eventually(p.t, within, p.Name+" is ready", func() error {
		p.mustRun()
		return Ready(c, base)
	})
}

// Ready is nil when base + "/readyz" answers 200.
func Ready(c *http.Client, base string) error {
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return Check(resp.StatusCode == http.StatusOK, "/readyz answers %d", resp.StatusCode)
}

// mustRun fails the test at once if the current incarnation has exited:
// what a wait waits for will never come.
func (p *Proc) mustRun() {
	if st := p.State(); st != nil {
		p.t.Fatalf("%s exited (%v)", p.Name, st)
	}
}

// FDs counts the process's open file handles (-1 if it cannot).
func (p *Proc) FDs() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Pid()))
	if err != nil {
		return -1
	}
	return len(ents)
}

// LogLine is one line of a process's output and when it arrived.
type LogLine struct {
	At   time.Time
	Text string
}

// Log collects a process's output line by line.
type Log struct {
	mu      sync.Mutex
	partial []byte
	lines   []LogLine
}

func (l *Log) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, LogLine{At: now, Text: string(l.partial[:i])})
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

// Note adds a line of the test's own (a marker: "=== kill -9 ===").
func (l *Log) Note(format string, args ...any) { fmt.Fprintf(l, format+"\n", args...) }

// Matching returns the lines since from that match re.
func (l *Log) Matching(re *regexp.Regexp, from time.Time) []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LogLine
	for _, ln := range l.lines {
		if !ln.At.Before(from) && re.MatchString(ln.Text) {
			out = append(out, ln)
		}
	}
	return out
}

// Between returns the lines that arrived in [from, to).
func (l *Log) Between(from, to time.Time) []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LogLine
	for _, ln := range l.lines {
		if !ln.At.Before(from) && ln.At.Before(to) {
			out = append(out, ln)
		}
	}
	return out
}

// Tail is the last n lines.
func (l *Log) Tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, ln := range l.lines[max(0, len(l.lines)-n):] {
		b.WriteString(ln.Text)
		b.WriteByte('\n')
	}
	return b.String()
}
