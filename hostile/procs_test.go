package hostile

import (
	"regexp"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// proc is a process of the test's own: an idemgate role, or dev mode
// (testenv.Proc, the suites' one harness), under this package's names.
type proc struct {
	*testenv.Proc
	t    *testing.T
	name string
	out  logLines
}

// startProc starts argv (testenv.StartProc): its environment is vars
// alone over the test process's own, less the backends' and idemgate's
// settings; a held address (heldAddr) given as IDEMGATE_ADDR,
// IDEMGATE_METRICS_ADDR or --addr is passed as a listener it inherits.
func startProc(t *testing.T, name string, vars []string, argv ...string) *proc {
	t.Helper()
	return procOf(t, testenv.StartProc(t, name, vars, argv...))
}

func procOf(t *testing.T, p *testenv.Proc) *proc {
	return &proc{Proc: p, t: t, name: p.Name, out: logLines{p.Log}}
}

// role starts an idemgate role (serve, project, relay, dev ...).
func role(t *testing.T, name string, vars []string, args ...string) *proc {
	t.Helper()
	return startProc(t, name, vars, append([]string{bin}, args...)...)
}

func (p *proc) pid() int     { return p.Pid() }
func (p *proc) exited() bool { return p.Exited() }
func (p *proc) fds() int     { return p.FDs() }

// terminate sends SIGTERM and waits for the exit; it returns the exit
// code and how long the process took to exit.
func (p *proc) terminate(within time.Duration) (code int, took time.Duration) {
	p.t.Helper()
	return p.Terminate(within)
}

// waitLog waits until a line of the process's output matches re and
// returns it.
func (p *proc) waitLog(re *regexp.Regexp, within time.Duration) string {
	p.t.Helper()
	return p.WaitLog(re, within)
}

// logLine is one line of a process's output and when it arrived.
type logLine struct {
	at   time.Time
	text string
}

// logLines is a process's output line by line (testenv.Log).
type logLines struct{ *testenv.Log }

// matching returns the lines since from that match re.
func (l logLines) matching(re *regexp.Regexp, from time.Time) []logLine {
	return lines(l.Matching(re, from))
}

// between returns the lines that arrived in [from, to).
func (l logLines) between(from, to time.Time) []logLine { return lines(l.Between(from, to)) }

func lines(ls []testenv.LogLine) []logLine {
	out := make([]logLine, len(ls))
	for i, l := range ls {
		out[i] = logLine{at: l.At, text: l.Text}
	}
	return out
}
