package chaos

// The gateway's upstream: the demo orders service (examples/orders) as a
// process of its own, which honours Idempotency-Key and keeps its answers
// in a file. The routes file puts orders.create and orders.cancel in
// front of it. It is restarted once with kill -9 during the load, and it
// is reached through a TCP tap of the test's (tap_test.go) that lets
// the killer catch a call whose answer is on its way back.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// upstream is the orders service process.
type upstream struct {
	bin, data, logPath string
	tap                *tap // the address the routes file names

	mu      sync.Mutex
	addr    string // where the running service listens: a port of the kernel's choice at each start
	cmd     *exec.Cmd
	exited  chan struct{}
	starts  int
	stopped bool
}

// startUpstream starts the orders service on a loopback port of its own
// (port 0: the kernel's choice, which it prints) and its tap on a port
// the test holds, with its data file among the run's logs, and writes
// the routes file that serve and project are given.
func (r *run) startUpstream() {
	u := &upstream{bin: r.ordersBin,
		data: filepath.Join(r.logDir, "orders.jsonl"), logPath: filepath.Join(r.logDir, "orders.log")}
	port := testenv.NewPort(r.t)
	u.tap = &tap{port: port, listen: port.Addr(), armed: make(chan *catch, 1)}
	r.up = u
	r.t.Cleanup(func() {
		u.mu.Lock()
		u.stopped = true
		u.mu.Unlock()
		u.tap.close()
		u.kill()
	})
	if err := u.start(r); err != nil {
		r.t.Fatalf("orders service: %v\n%s", err, r.tail(u.logPath, 20))
	}
	if err := u.tap.open(); err != nil {
		r.t.Fatalf("tap to the orders service: %v", err)
	}
	schema := filepath.Join(r.root, "examples", "orders", "order.schema.json")
	routes := fmt.Sprintf(`# written by the chaos test: the orders service behind the test's tap
routes:
  - operation: %s
    path: /v1/orders
    upstream: http://%s/orders
    schema: %s
    timeout: 5s
  - operation: %s
    path: /v1/orders/{id}/cancel
    upstream: http://%s/orders/{id}/cancel
    timeout: 5s
`, opOrderCreate, u.tap.listen, schema, opOrderCancel, u.tap.listen)
	r.routesFile = filepath.Join(r.logDir, "routes.yaml")
	if err := os.WriteFile(r.routesFile, []byte(routes), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.logf("orders service up at %s (data %s), reached through the tap at %s", u.address(), u.data, u.tap.listen)
}

// address is where the running service listens.
func (u *upstream) address() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.addr
}

// listeningLine is what the orders service prints once it listens.
var listeningLine = regexp.MustCompile(`^orders: listening on http://([0-9.]+:[0-9]+),`)

// start runs the orders service, learns its address from the line it
// prints once it listens, points the tap there, and waits until it
// answers.
func (u *upstream) start(r *run) error {
	f, err := os.OpenFile(u.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	u.mu.Lock()
	if u.stopped {
		u.mu.Unlock()
		f.Close()
		return fmt.Errorf("the test is over")
	}
	fmt.Fprintf(f, "chaos: === orders start #%d at t+%.1fs ===\n", u.starts+1, r.since())
	cmd := exec.Command(u.bin, "--addr", "127.0.0.1:0", "--data", u.data)
	listening := make(chan string, 1)
	cmd.Stdout, cmd.Stderr = io.MultiWriter(f, &lineWatch{re: listeningLine, found: listening}), f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		u.mu.Unlock()
		f.Close()
		return err
	}
	u.cmd, u.exited = cmd, make(chan struct{})
	u.starts++
	exited := u.exited
	u.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		fmt.Fprintf(f, "chaos: === orders exit at t+%.1fs: %s ===\n", r.since(), exitReason(cmd.ProcessState, true))
		f.Close()
		close(exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	var addr string
	select {
	case addr = <-listening:
	case <-exited:
		return fmt.Errorf("it exited at start (log %s)", u.logPath)
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("it did not say where it listens within 30s (log %s)", u.logPath)
	}
	u.mu.Lock()
	u.addr = addr
	u.mu.Unlock()
	u.tap.retarget(addr)
	client := &http.Client{Timeout: time.Second}
	var died error
	err = testenv.Poll(context.Background(), time.Until(deadline), func() error {
		select {
		case <-exited:
			died = fmt.Errorf("it exited at start (log %s)", u.logPath)
			return nil
		default:
		}
		resp, err := client.Get("http://" + addr + "/orders")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return testenv.Check(resp.StatusCode == http.StatusOK, "GET /orders: %d", resp.StatusCode)
	})
	if died != nil {
		return died
	}
	if err != nil {
		return fmt.Errorf("not answering on %s within 30s: %w", addr, err)
	}
	return nil
}

// lineWatch passes the first match of re's first group in the lines
// written to it to found.
type lineWatch struct {
	re    *regexp.Regexp
	found chan<- string
	buf   []byte
	done  bool
}

func (w *lineWatch) Write(p []byte) (int, error) {
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if m := w.re.FindSubmatch(w.buf[:i]); m != nil {
			w.found <- string(m[1])
			w.done, w.buf = true, nil
			return len(p), nil
		}
		w.buf = w.buf[i+1:]
	}
}

// kill sends kill -9 to the service's group and waits for its exit.
func (u *upstream) kill() (pid int) {
	u.mu.Lock()
	cmd, exited := u.cmd, u.exited
	u.mu.Unlock()
	if cmd == nil {
		return 0
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
	return cmd.Process.Pid
}

// restartUpstream kills the orders service with -9 (answers it recorded
// are on disk: it syncs each before sending it), keeps it down for hold
// (the tap stops listening too, so that calls meet a refused
// connection, as they would at the service's own port), then starts it
// again on its data file (on another port, the tap's staying the same). While it is down, every new
// command is an order, so that calls do meet the outage; it stays down
// until one has.
func (r *run) restartUpstream(hold time.Duration) {
	u := r.up
	r.logf("CHAOS: kill -9 of the orders service (the gateway's upstream)")
	r.outagesNow.Add(1)
	defer r.outagesNow.Add(-1)
	start := time.Now()
	r.upIsDown.Store(true)
	defer r.upIsDown.Store(false)
	refusedBefore, _ := r.refusedCalls()
	u.tap.close()
	pid := u.kill()
	r.logf("CHAOS: killed the orders service (pid %d); down for %v, and until a call meets the outage", pid, hold)
	time.Sleep(hold) // the outage itself, part of the schedule, not a wait
	// The outage lasts until a call has met it (a refused connection noted
	// on a recovery point): beside a CPU-heavy job the projectors may not
	// call at all within hold (CI saw none), and the run is to show what
	// a call that meets it does.
	if err := testenv.Poll(context.Background(), 2*time.Minute, func() error {
		n, err := r.refusedCalls()
		if err != nil {
			return err
		}
		return testenv.Check(n > refusedBefore, "no call refused yet (%d before the outage)", refusedBefore)
	}); err != nil {
		r.logf("no call met the orders service's outage: %v", err)
	}
	if err := u.start(r); err != nil {
		r.fail("backend", "orders service restart: %v", err)
		return
	}
	if err := u.tap.open(); err != nil {
		r.fail("backend", "tap to the orders service: %v", err)
		return
	}
	r.backUp(&r.upOut, "orders service", start)
}

// refusedCalls counts the recovery points whose last error is a refused
// connection to the orders service.
func (r *run) refusedCalls() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	err := r.db.QueryRow(ctx, `SELECT count(*) FROM call_attempts WHERE last_error LIKE '%connection refused%'`).Scan(&n)
	return n, err
}

// orderEntry is one answer the orders service recorded (a line of its
// data file, an item of GET /orders).
type orderEntry struct {
	Key    string          `json:"key"`
	Order  string          `json:"order"`
	Action string          `json:"action"`
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// upstreamView is what the orders service holds at the end of the run.
type upstreamView struct {
	listed   map[string]orderEntry // GET /orders, by Idempotency-Key
	lines    map[string]int        // data file lines by key: a second effect would append a second line
	nLines   int
	badLines int // lines that are not an entry (cut short)
	created  int // lines that created an order (create, 201): the effects
}

// readUpstream reads GET /orders and the data file.
func (r *run) readUpstream(ctx context.Context) (upstreamView, error) {
	v := upstreamView{listed: map[string]orderEntry{}, lines: map[string]int{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.up.address()+"/orders", nil)
	if err != nil {
		return v, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return v, fmt.Errorf("GET /orders: %w", err)
	}
	defer resp.Body.Close()
	var list []orderEntry
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET /orders: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return v, fmt.Errorf("GET /orders: %w", err)
	}
	for _, e := range list {
		if _, dup := v.listed[e.Key]; dup {
			return v, fmt.Errorf("GET /orders lists key %s twice", e.Key)
		}
		v.listed[e.Key] = e
	}
	f, err := os.Open(r.up.data)
	if err != nil {
		return v, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		v.nLines++
		var e orderEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Key == "" {
			v.badLines++
			continue
		}
		v.lines[e.Key]++
		if e.Action == "create" && e.Status == http.StatusCreated {
			v.created++
		}
	}
	return v, sc.Err()
}
