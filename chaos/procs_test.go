package chaos

// The processes under test and their supervisor, which restarts any of
// them that exits, as a process manager would: killed by the chaos killer,
// dead at a fault point, or crashed on a backend outage.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// proc is one supervised idemgate process (serve, project or relay).
type proc struct {
	name     string // e.g. serve-1
	kind     string // the role: serve, project, relay
	extraEnv []string
	logPath  string
	url      string        // serve only: http://addr
	port     *testenv.Port // serve only: the API's port, held by the test
	tp       *testenv.Proc // the process, started again at each incarnation

	mu      sync.Mutex
	pid     int    // 0 while not running
	starts  int    // how many times it was started
	signals int    // signals we sent to the current incarnation
	faults  string // IDEMGATE_FAULTS of the current incarnation
	mode    int32  // the run's fault mode when it started
	forced  bool   // we escalated SIGTERM to SIGKILL
	stop    bool   // the test is over: do not restart
	exits   map[string]int
	done    chan struct{}
}

// supervise runs p, and restarts it after each exit, until stop. It
// waits ~200 ms before a restart, as a process manager would
// (systemd's RestartSec): the pause is part of the outage the clients
// must ride out, not a wait for something to happen.
func (r *run) supervise(p *proc) {
	defer close(p.done)
	for {
		f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			r.fail("supervisor", "open %s: %v", p.logPath, err)
			return
		}
		mode := r.faultMode.Load()
		env, faults := r.procEnv(p)
		p.mu.Lock()
		if p.stop {
			p.mu.Unlock()
			f.Close()
			return
		}
		fmt.Fprintf(f, "chaos: === %s start #%d at t+%.1fs IDEMGATE_FAULTS=%q ===\n", p.name, p.starts+1, r.since(), faults)
		p.tp.Env, p.tp.Output = env, f
		err = p.tp.Start()
		if err == nil {
			p.pid = p.tp.Pid()
			p.starts++
			p.signals = 0
			p.faults = faults
			p.mode = mode
			p.forced = false
		}
		p.mu.Unlock()
		if err != nil {
			f.Close()
			r.fail("supervisor", "start %s: %v", p.name, err)
			return
		}
		<-p.tp.Done()
		p.mu.Lock()
		reason := exitReason(p.tp.State(), p.signals > 0)
		if p.forced {
			reason = "kill -9 (SIGTERM not obeyed within the grace period)"
		}
		p.exits[reason]++
		p.pid = 0
		stop := p.stop
		p.mu.Unlock()
		fmt.Fprintf(f, "chaos: === %s exit at t+%.1fs: %s ===\n", p.name, r.since(), reason)
		f.Close()
		if stop {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exitReason classifies how a process ended.
func exitReason(ps *os.ProcessState, signalledByUs bool) string {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return ps.String()
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL && signalledByUs:
		return "kill -9 (chaos)"
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		return "kill -9 (self: fault point)"
	case ws.Signaled():
		return "signal " + ws.Signal().String()
	case ws.ExitStatus() == 0 && signalledByUs:
		return "stopped (SIGTERM)"
	default:
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	}
}

// signal sends sig to p's process group; false when p is not running.
func (p *proc) signal(sig syscall.Signal) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid == 0 {
		return 0, false
	}
	p.signals++
	_ = syscall.Kill(-p.pid, sig)
	return p.pid, true
}

// signalPID sends sig to p's process group only if p still runs as pid.
func (p *proc) signalPID(pid int, sig syscall.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pid == 0 || p.pid != pid {
		return false
	}
	p.signals++
	_ = syscall.Kill(-p.pid, sig)
	return true
}

func (p *proc) state() (pid, starts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, p.starts
}

// procEnv is p's environment for its next start (over the test's, less
// the suite's servers: testenv.Proc) and the fault spec in it.
func (r *run) procEnv(p *proc) ([]string, string) {
	env := []string{
		"DATABASE_URL=" + r.dbURL,
		"KAFKA_BROKERS=" + r.brokers,
		"IDEMGATE_API_KEYS=key-a=tenant-a,key-b=tenant-b",
		"IDEMGATE_PARTITIONS=6",
		"IDEMGATE_LEASE=2s",
		"IDEMGATE_SWEEP_INTERVAL=500ms",
		"IDEMGATE_TOPIC_PREFIX=" + r.prefix,
		"IDEMGATE_GROUP=" + r.group,
	}
	if p.port != nil {
		// The held port: the process inherits a listener on it.
		env = append(env, "IDEMGATE_ADDR="+p.port.Addr())
	}
	if p.kind != "relay" {
		// The gateway's routes, with the default call budget: projector
		// deaths spend none of it, and the upstream's outage (2 s and a
		// restart) is well within its span of time.
		env = append(env, "IDEMGATE_ROUTES="+r.routesFile)
	}
	if p.kind == "project" {
		env = append(env, fmt.Sprintf("IDEMGATE_MAX_ATTEMPTS=%d", poisonMaxAttempts))
	}
	if p.name == "project-2" {
		// One projector leaves its results to the relay, as a projector of
		// the release before does during a rolling update: both ways of
		// publishing run under the faults, and the relay has outcomes to
		// publish (and its fault point, relay.after-publish, a chance to
		// fire) beside the projector that publishes its own.
		env = append(env, "IDEMGATE_PROJECTOR_PUBLISHES=false")
	}
	if p.kind == "serve" && r.cl != nil {
		// serve reaches the database through the proxies of the
		// cluster run (the later value of a variable wins).
		env = append(env, "DATABASE_URL="+r.cl.serveDBURL)
	}
	env = append(env, p.extraEnv...)
	faults := r.faultSpec(p.kind)
	if faults != "" {
		env = append(env, "IDEMGATE_FAULTS="+faults)
	}
	return env, faults
}

// restartAll stops every process gracefully (SIGTERM, then SIGKILL after
// grace) and waits until the supervisor has started each one again, with
// the environment procEnv now gives.
func (r *run) restartAll(kinds map[string]bool, grace time.Duration) {
	var wg sync.WaitGroup
	for _, p := range r.procs {
		if kinds != nil && !kinds[p.kind] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, before := p.state()
			pid, ok := p.signal(syscall.SIGTERM)
			deadline := time.Now().Add(grace)
			err := testenv.Poll(context.Background(), grace+2*time.Minute, func() error {
				cur, starts := p.state()
				if starts > before && cur != 0 {
					p.mu.Lock()
					stale := p.mode != r.faultMode.Load()
					p.mu.Unlock()
					if !stale {
						return nil
					}
					// Started in the instant before the switch: again.
					_, before = p.state()
					pid, ok = p.signal(syscall.SIGTERM)
					deadline = time.Now().Add(grace)
					return errors.New("restarted in the mode before the switch")
				}
				if ok && cur == pid && time.Now().After(deadline) {
					r.logf("%s did not stop within %v of SIGTERM; kill -9", p.name, grace)
					r.mu.Lock()
					r.slowStops[p.kind]++
					r.mu.Unlock()
					p.mu.Lock()
					p.forced = true
					p.mu.Unlock()
					p.signal(syscall.SIGKILL)
					ok = false
				}
				return errors.New("not restarted yet")
			})
			if err != nil {
				r.fail("supervisor", "%s was not restarted: %v", p.name, err)
			}
		}()
	}
	wg.Wait()
}

var faultLine = regexp.MustCompile(`fault: dying at (\S+)`)

// faultHits counts "fault: dying at X" lines in every process log.
func (r *run) faultHits() map[string]int {
	hits := map[string]int{}
	r.eachLogLine(func(_ *proc, line string) {
		if m := faultLine.FindStringSubmatch(line); m != nil {
			hits[m[1]]++
		}
	})
	return hits
}

// scanLogs returns the lines of every process log that match re, each
// prefixed with the process name (at most max).
func (r *run) scanLogs(re *regexp.Regexp, max int) (n int, lines []string) {
	r.eachLogLine(func(p *proc, line string) {
		if re.MatchString(line) {
			n++
			if len(lines) < max {
				lines = append(lines, p.name+": "+line)
			}
		}
	})
	return n, lines
}

// eachLogLine calls f with every line of every process log, process by
// process; a log that cannot be opened is passed over.
func (r *run) eachLogLine(f func(p *proc, line string)) {
	for _, p := range r.procs {
		file, err := os.Open(p.logPath)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			f(p, sc.Text())
		}
		file.Close()
	}
}

// exitSummary is "reason=n, ..." over every process, by kind.
func (r *run) exitSummary() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, p := range r.procs {
		p.mu.Lock()
		if out[p.kind] == nil {
			out[p.kind] = map[string]int{}
		}
		for k, v := range p.exits {
			out[p.kind][k] += v
		}
		p.mu.Unlock()
	}
	return out
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
