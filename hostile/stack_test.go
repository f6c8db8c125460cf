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
type stack struct{ *testenv.Stack }

// newStack is a stack on a fresh database of the suite's server and the
// suite's Kafka (the real broker, or a kfake cluster of the test's own);
// vars are name/value pairs over newStackOn's.
func newStack(t *testing.T, vars ...string) *stack {
	t.Helper()
	return newStackOn(t, env.NewDatabase(t, migrations(t)...), env.Kafka(t), vars...)
}

// newStackOn is a stack on the given (migrated) database and brokers,
// with a short lease and sweep so that re-emission shows within a test,
// and vars (name/value pairs) over them.
func newStackOn(t *testing.T, dbURL string, brokers []string, vars ...string) *stack {
	t.Helper()
	return &stack{testenv.NewStack(t, dbURL, brokers, append([]string{"IDEMGATE_LEASE", "2s", "IDEMGATE_SWEEP_INTERVAL", "500ms"}, vars...)...)}
}

// newOwnStack is a stack on a PostgreSQL server of the test's own
// (startOwnPG), which it may freeze or stop, and the suite's Kafka.
func newOwnStack(t *testing.T, vars ...string) (*ownPG, *stack) {
	t.Helper()
	pg := startOwnPG(t)
	return pg, newStackOn(t, pg.URL(), env.Kafka(t), vars...)
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

// api is a running serve process (or dev mode) with this package's
// client (client_test.go).
type api struct {
	*testenv.API
	t testing.TB
}

// serve starts the API on an address of its own and waits until it is
// ready.
func (s *stack) serve(extra ...string) *api {
	s.T.Helper()
	return &api{s.Serve(extra...), s.T}
}

// devAPI is the API of a dev process serving on addr.
func devAPI(t *testing.T, p *testenv.Proc, addr string) *api {
	return &api{&testenv.API{Proc: p, Addr: addr, Base: "http://" + addr}, t}
}

// waitCount waits until the query counts want, and returns how long it
// took.
func (s *stack) waitCount(want int, within time.Duration, sql string, args ...any) time.Duration {
	s.T.Helper()
	start := time.Now()
	testenv.Eventually(s.T, within, sql, func() error {
		n := s.Count(sql, args...)
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
