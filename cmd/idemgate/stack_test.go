package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/roles"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

var env *testenv.Env

// TestMain runs the tests, or, when IDEMGATE_RUN_MAIN is set, acts as the
// idemgate binary with the command line after "--": tests that need a
// process of its own to kill start this binary that way (selfProc).
func TestMain(m *testing.M) {
	if os.Getenv("IDEMGATE_RUN_MAIN") != "" {
		os.Args = append([]string{"idemgate"}, os.Args[slices.Index(os.Args, "--")+1:]...)
		main()
		return
	}
	testenv.Run(m, &env)
}

// selfProc is this test binary as the idemgate binary with args as its
// command line (TestMain), a process of t not started yet
// (testenv.NewProc: env over the test's environment less the backends'
// and idemgate's settings; a held port after --addr is inherited).
func selfProc(t testing.TB, name string, env []string, args ...string) *testenv.Proc {
	return testenv.NewProc(t, name, append(slices.Clip(env), "IDEMGATE_RUN_MAIN=1"),
		append([]string{os.Args[0], "-test.run=^$", "--"}, args...)...)
}

// startSelf starts selfProc and fails t if it cannot.
func startSelf(t testing.TB, name string, env []string, args ...string) *testenv.Proc {
	t.Helper()
	p := selfProc(t, name, env, args...)
	if err := p.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return p
}

// newDatabase is a database of t's own with the reference service's
// schema, migrated the way `idemgate migrate` migrates it.
func newDatabase(t testing.TB) string {
	t.Helper()
	reg, err := registry(roles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return env.NewDatabase(t, roles.Migrations(reg)...)
}

// stack is serve + project, started through run() exactly as the binary
// starts them, in the test's own process, on the test's own database and
// topics (testenv.Stack). In-process, not child processes (testenv.Proc):
// the tests here call run() itself, and some hand a role options that
// only a caller in the process can (trace_test.go).
type stack struct {
	*testenv.Stack
	t       testing.TB
	port    *testenv.Port // the API's; base is on it
	base    string
	db      *sqldb.DB
	brokers []string
	topics  events.Topics
	group   string
	vars    map[string]string
	// exited, when not nil, receives the end of a role that ends before
	// the test does (failover_test.go).
	exited chan string
}

// startStack starts serve, project and relay; extra are environment
// variable name/value pairs over the defaults.
func startStack(t testing.TB, extra ...string) *stack {
	t.Helper()
	return startRoles(t, []string{"serve", "project", "relay"}, extra...)
}

// startRoles starts the given roles on a fresh database and fresh topics.
// IDEMGATE_ADDR is given to each serve as it starts: a listener of its
// own on the port (apiAddr).
func startRoles(t testing.TB, roles []string, extra ...string) *stack {
	t.Helper()
	s := newStack(t, newDatabase(t), env.Kafka(t), extra...)
	s.start(roles...)
	return s
}

// newStack is a stack on the given (migrated) database and brokers, with
// no role started yet.
func newStack(t testing.TB, dbURL string, brokers []string, extra ...string) *stack {
	t.Helper()
	ts := testenv.NewStack(t, dbURL, brokers, extra...)
	s := &stack{Stack: ts, t: t, db: ts.DB, brokers: ts.Brokers, topics: events.TopicsWithPrefix(ts.Prefix),
		group: ts.Group, vars: ts.Vars, port: testenv.NewPort(t)}
	s.base = "http://" + s.port.Addr()
	return s
}

// start starts the roles (startRole) and, if there are any, waits until
// the API is ready.
func (s *stack) start(roles ...string) {
	s.t.Helper()
	for _, role := range roles {
		s.startRole(role)
	}
	if len(roles) > 0 {
		s.waitHealthy()
	}
}

// startRole runs one role until the test ends; its log is shown if the
// test fails, and its end is reported on exited (when set) if it comes
// before the test's.
func (s *stack) startRole(role string) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	addr := ""
	if role == "serve" {
		addr = s.apiAddr()
	}
	getenv := func(k string) string {
		if k == "IDEMGATE_ADDR" && addr != "" {
			return addr
		}
		return s.vars[k]
	}
	go func() {
		err := run(ctx, []string{role}, getenv, io.Discard, logs)
		if ctx.Err() == nil && s.exited != nil {
			s.exited <- fmt.Sprintf("%s exited: %v", role, err)
		}
		done <- err
	}()
	s.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				s.t.Errorf("%s ended with: %v", role, err)
			}
		case <-time.After(30 * time.Second):
			s.t.Errorf("%s did not stop within 30s of its context ending", role)
		}
		if s.t.Failed() {
			s.t.Logf("--- %s log ---\n%s", role, logs.String())
		}
	})
}

// apiAddr opens a listener on the API's port for one serve started in
// this process, and names it as its IDEMGATE_ADDR (fd:N): the port is
// the test's from start to end, never free for another process to take.
func (s *stack) apiAddr() string {
	s.t.Helper()
	addr, err := s.port.Fd()
	if err != nil {
		s.t.Fatal(err)
	}
	return addr
}

func (s *stack) waitHealthy() {
	s.t.Helper()
	testenv.Eventually(s.t, 60*time.Second, "the API at "+s.base+" is ready", func() error {
		return testenv.Ready(http.DefaultClient, s.base)
	})
}

// response is an HTTP answer read whole.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (s *stack) do(method, path, apiKey, idemKey, contentType, body string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (s *stack) postPayment(apiKey, idemKey, body string) response {
	s.t.Helper()
	return s.do("POST", "/v1/payments", apiKey, idemKey, "application/json", body)
}

// waitCompleted polls GET /v1/operations/{id} until it is completed.
func (s *stack) waitCompleted(apiKey, location string) response {
	s.t.Helper()
	var r response
	testenv.Eventually(s.t, 60*time.Second, location+" is completed", func() error {
		r = s.do("GET", location, apiKey, "", "", "")
		return testenv.Check(r.Status == 200 && bytes.Contains(r.Body, []byte(`"status":"completed"`)), "%d %s", r.Status, r.Body)
	})
	return r
}

// count runs a counting query (testenv.Count).
func (s *stack) count(sql string, args ...any) int {
	s.t.Helper()
	return s.Count(sql, args...)
}

// commandRecords reads every record of the commands topic.
func (s *stack) commandRecords() []*kgo.Record {
	s.t.Helper()
	return s.topicRecords(s.topics.Commands)
}

// topicRecords reads every record of a topic, up to its end offsets now.
func (s *stack) topicRecords(topic string) []*kgo.Record {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := s.admin()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		s.t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cl, err := kgo.NewClient(append(testenv.KafkaOptions(s.t, s.brokers),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < want {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			s.t.Fatalf("read %d of %d records of %s", len(out), want, topic)
		}
		out = append(out, f.Records()...)
	}
	return out
}

func (s *stack) admin() *kadm.Client {
	cl, err := kgo.NewClient(testenv.KafkaOptions(s.t, s.brokers)...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// waitCommittedPast waits until the projectors' group has committed an
// offset beyond offset on the record's partition: everything up to it has
// been applied.
func (s *stack) waitCommittedPast(topic string, partition int32, offset int64) {
	s.t.Helper()
	adm := s.admin()
	testenv.Eventually(s.t, 60*time.Second, fmt.Sprintf("group %s commits past %s/%d@%d", s.group, topic, partition, offset), func() error {
		offs, err := adm.FetchOffsets(context.Background(), s.group)
		if err != nil {
			return err
		}
		o, ok := offs.Lookup(topic, partition)
		return testenv.Check(ok && o.At > offset, "committed %v", o.At)
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func mustEqual[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
