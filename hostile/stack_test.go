package hostile

import (
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/payments"
	"github.com/idemgate/idemgate/roles"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/testenv"
)

// stack is a database and topics of the test's own, on which it starts
// idemgate's roles as separate processes (testenv.Stack).
type stack struct {
	*testenv.Stack
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

// newStackOn is a stack on the given (migrated) database and brokers,
// with a short lease and sweep so that re-emission shows within a test.
func newStackOn(t *testing.T, dbURL string, brokers []string) *stack {
	t.Helper()
	s := testenv.NewStack(t, dbURL, brokers, "IDEMGATE_LEASE", "2s", "IDEMGATE_SWEEP_INTERVAL", "500ms")
	return &stack{Stack: s, t: t, dbURL: s.DBURL, db: s.DB, brokers: s.Brokers, prefix: s.Prefix, group: s.Group, vars: s.Vars}
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
func (s *stack) environ(extra ...string) []string { return s.Environ(extra...) }

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
	a := s.Serve(extra...)
	return &api{proc: procOf(s.t, a.Proc), addr: a.Addr, base: a.Base}
}

// waitReady waits until /readyz answers 200.
func (a *api) waitReady(within time.Duration) {
	a.t.Helper()
	a.WaitReady(a.base, within)
}

var projectorUp = testenv.ProjectorUp

// project starts a projector and waits until it consumes.
func (s *stack) project(extra ...string) *proc {
	s.t.Helper()
	return procOf(s.t, s.Project(extra...))
}

// relay starts the outbox relay and waits until it publishes.
func (s *stack) relay(extra ...string) *proc {
	s.t.Helper()
	return procOf(s.t, s.Relay(extra...))
}

// count runs a counting query (testenv.Count).
func (s *stack) count(sql string, args ...any) int {
	s.t.Helper()
	return s.Count(sql, args...)
}

// waitCount waits until the query counts want, and returns how long it
// took.
func (s *stack) waitCount(want int, within time.Duration, sql string, args ...any) time.Duration {
	s.t.Helper()
	start := time.Now()
	testenv.Eventually(s.t, within, sql, func() error {
		n := s.count(sql, args...)
		return testenv.Check(n == want, "%d, want %d", n, want)
	})
	return time.Since(start)
}

// heldAddr is the address of a port held for t until it ends
// (testenv.NewPort): a process given it inherits a listener on it,
// connections are refused while none is open, and no other process can
// take the port meanwhile.
func heldAddr(t *testing.T) string {
	t.Helper()
	return testenv.NewPort(t).Addr()
}
