package hostile

import (
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/payments"
	"github.com/idemgate/idemgate/roles"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// stack is a database and topics of the test's own, on which it starts
// idemgate's roles as separate processes.
type stack struct {
	t       *testing.T
	dbURL   string
	db      *sqldb.DB
	brokers []string
	prefix  string
	group   string
	vars    map[string]string
}

// newStack is a stack on a fresh database of the suite's server and the
// suite's Kafka (the real broker, or a kfake cluster of the test's own).
func newStack(t *testing.T) *stack {
	t.Helper()
	return newStackOn(t, env.NewDatabase(t, migrations(t)...), env.Kafka(t))
}

// newStackOn is a stack on the given (migrated) database and brokers.
func newStackOn(t *testing.T, dbURL string, brokers []string) *stack {
	t.Helper()
	s := &stack{t: t, dbURL: dbURL, db: testenv.OpenDB(t, dbURL), brokers: brokers,
		prefix: "h" + testenv.Random(4), group: "g" + testenv.Random(4)}
	s.vars = map[string]string{
		"DATABASE_URL":            dbURL,
		"KAFKA_BROKERS":           strings.Join(brokers, ","),
		"IDEMGATE_API_KEYS":       "key-a=tenant-a,key-b=tenant-b",
		"IDEMGATE_TOPIC_PREFIX":   s.prefix,
		"IDEMGATE_GROUP":          s.group,
		"IDEMGATE_PARTITIONS":     "3",
		"IDEMGATE_LEASE":          "2s",
		"IDEMGATE_SWEEP_INTERVAL": "500ms",
	}
	return s
}

// migrations is the schema of the binary's registry (the payments).
func migrations(t *testing.T) []sqldb.MigrationSet {
	t.Helper()
	reg, err := idemgate.NewRegistry(payments.Module(payments.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	return roles.Migrations(reg)
}

// environ is the stack's variables with extra name/value pairs over them.
func (s *stack) environ(extra ...string) []string {
	vars := map[string]string{}
	for k, v := range s.vars {
		vars[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		vars[extra[i]] = extra[i+1]
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// api is a running serve process.
type api struct {
	*proc
	addr string
	base string // http://addr
}

// serve starts the API on an address of its own and waits until it is
// ready.
func (s *stack) serve(extra ...string) *api {
	s.t.Helper()
	addr := heldAddr(s.t)
	p := role(s.t, "serve "+addr, s.environ(append([]string{"IDEMGATE_ADDR", addr}, extra...)...), "serve")
	a := &api{proc: p, addr: addr, base: "http://" + addr}
	a.waitReady(60 * time.Second)
	return a
}

// waitReady waits until /readyz answers 200.
func (a *api) waitReady(within time.Duration) {
	a.t.Helper()
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 3 * time.Second}
	for {
		resp, err := c.Get(a.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if a.exited() {
			a.t.Fatalf("%s exited (%v) before it was ready", a.name, a.cmd.ProcessState)
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("%s not ready within %v", a.name, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	projectorUp = regexp.MustCompile(`projector consuming`)
	relayUp     = regexp.MustCompile(`relay publishing`)
)

// project starts a projector and waits until it consumes.
func (s *stack) project(extra ...string) *proc {
	s.t.Helper()
	p := role(s.t, "project", s.environ(extra...), "project")
	p.waitLog(projectorUp, 60*time.Second)
	return p
}

// relay starts the outbox relay and waits until it publishes.
func (s *stack) relay(extra ...string) *proc {
	s.t.Helper()
	p := role(s.t, "relay", s.environ(extra...), "relay")
	p.waitLog(relayUp, 60*time.Second)
	return p
}

// count runs a counting query (testenv.Count).
func (s *stack) count(sql string, args ...any) int {
	s.t.Helper()
	return testenv.Count(s.t, s.db, sql, args...)
}

// waitCount waits until the query counts want.
func (s *stack) waitCount(want int, within time.Duration, sql string, args ...any) time.Duration {
	s.t.Helper()
	start := time.Now()
	for {
		n := s.count(sql, args...)
		if n == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			s.t.Fatalf("%s = %d after %v, want %d", sql, n, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// heldPorts are the tests' held ports (testenv.Port) by address.
var heldPorts sync.Map

// heldAddr is the address of a port held for t until it ends: startProc
// gives a process a listener on it to inherit, connections are refused
// while none is open, and no other process can take the port meanwhile.
func heldAddr(t *testing.T) string {
	t.Helper()
	p := testenv.NewPort(t)
	heldPorts.Store(p.Addr(), p)
	t.Cleanup(func() { heldPorts.Delete(p.Addr()) })
	return p.Addr()
}
