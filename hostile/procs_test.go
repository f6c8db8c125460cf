package hostile

import (
	"bytes"
	"fmt"
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

	"github.com/idemgate/idemgate/testenv"
)

// proc is a process of the test's own: an idemgate role, or dev mode.
// It runs in a process group of its own, and is stopped (SIGTERM, then
// SIGKILL of the group) when the test ends; its log is shown when the
// test failed.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *logLines
	done chan struct{} // closed once the process has exited
}

// startProc starts argv with the given environment over the test
// process's own, from which the backends' and idemgate's settings are
// removed first: a process of the test sees only what the test gives it.
// A held address (heldAddr) given as IDEMGATE_ADDR, IDEMGATE_METRICS_ADDR
// or --addr is passed as a listener on it that the process inherits
// (fd:N).
func startProc(t *testing.T, name string, vars []string, argv ...string) *proc {
	t.Helper()
	var files []*os.File
	inherit := func(addr string) string {
		port, ok := heldPorts.Load(addr)
		if !ok {
			return addr
		}
		f, err := port.(*testenv.Port).File()
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		files = append(files, f)
		return "fd:" + strconv.Itoa(2+len(files))
	}
	vars = slices.Clone(vars)
	for i, kv := range vars {
		if k, v, _ := strings.Cut(kv, "="); k == "IDEMGATE_ADDR" || k == "IDEMGATE_METRICS_ADDR" {
			vars[i] = k + "=" + inherit(v)
		}
	}
	argv = slices.Clone(argv)
	for i := 1; i < len(argv); i++ {
		if argv[i-1] == "--addr" {
			argv[i] = inherit(argv[i])
		}
	}
	defer func() { // the child's copies listen
		for _, f := range files {
			f.Close()
		}
	}()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = files
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || k == "KAFKA_BROKERS" || strings.HasPrefix(k, "IDEMGATE_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, vars...)
	p := &proc{t: t, name: name, cmd: cmd, out: &logLines{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(20 * time.Second)
		if t.Failed() {
			t.Logf("--- %s log (last 60 lines) ---\n%s", name, p.out.tail(60))
		}
	})
	return p
}

// role starts an idemgate role (serve, project, relay, dev ...).
func role(t *testing.T, name string, vars []string, args ...string) *proc {
	t.Helper()
	return startProc(t, name, vars, append([]string{bin}, args...)...)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and, if the process has not exited within grace,
// kills its group.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.t.Errorf("%s did not exit within %v of SIGTERM; killed", p.name, grace)
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// terminate sends SIGTERM and waits for the exit; it returns the exit
// code and how long the process took to exit.
func (p *proc) terminate(within time.Duration) (code int, took time.Duration) {
	p.t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(within):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
		p.t.Fatalf("%s did not exit within %v of SIGTERM", p.name, within)
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// waitLog waits until a line of the process's output matches re and
// returns it.
func (p *proc) waitLog(re *regexp.Regexp, within time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if ls := p.out.matching(re, time.Time{}); len(ls) > 0 {
			return ls[0].text
		}
		if p.exited() {
			p.t.Fatalf("%s exited (%v) before logging %q", p.name, p.cmd.ProcessState, re)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not log %q within %v", p.name, re, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fds counts the process's open file handles.
func (p *proc) fds() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid()))
	if err != nil {
		return -1
	}
	return len(ents)
}

// logLine is one line of a process's output and when it arrived.
type logLine struct {
	at   time.Time
	text string
}

// logLines collects a process's output line by line.
type logLines struct {
	mu      sync.Mutex
	partial []byte
	lines   []logLine
}

func (l *logLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, logLine{at: now, text: string(l.partial[:i])})
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

// matching returns the lines since from that match re.
func (l *logLines) matching(re *regexp.Regexp, from time.Time) []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logLine
	for _, ln := range l.lines {
		if !ln.at.Before(from) && re.MatchString(ln.text) {
			out = append(out, ln)
		}
	}
	return out
}

// between returns the lines that arrived in [from, to).
func (l *logLines) between(from, to time.Time) []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logLine
	for _, ln := range l.lines {
		if !ln.at.Before(from) && ln.at.Before(to) {
			out = append(out, ln)
		}
	}
	return out
}

func (l *logLines) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := max(0, len(l.lines)-n)
	var b strings.Builder
	for _, ln := range l.lines[start:] {
		b.WriteString(ln.text)
		b.WriteByte('\n')
	}
	return b.String()
}
