package testenv

import (
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idemgate/idemgate/sqldb"
)

// Stack is a database and topics of a test's own and the settings that
// idemgate's roles read from the environment, on which the test starts
// roles: as child processes (Role, Serve, Project, Relay), or in its own
// process from Vars.
type Stack struct {
	T       testing.TB
	DBURL   string
	DB      *sqldb.DB // a pool on DBURL
	Brokers []string
	Prefix  string // the topics' prefix
	Group   string // the projectors' consumer group
	// Vars are the roles' environment: the backends, two tenants' API
	// keys (key-a, key-b), the topic prefix, the group and 3 partitions,
	// with NewStack's vars over them.
	Vars map[string]string
}

// NewStack is a stack on the given (migrated) database and brokers;
// vars are name/value pairs over the defaults.
func NewStack(t testing.TB, dbURL string, brokers []string, vars ...string) *Stack {
	t.Helper()
	s := &Stack{T: t, DBURL: dbURL, DB: OpenDB(t, dbURL), Brokers: brokers,
		Prefix: "t" + Random(4), Group: "g" + Random(4)}
	s.Vars = map[string]string{
		"DATABASE_URL":          dbURL,
		"KAFKA_BROKERS":         strings.Join(brokers, ","),
		"IDEMGATE_API_KEYS":     "key-a=tenant-a,key-b=tenant-b",
		"IDEMGATE_TOPIC_PREFIX": s.Prefix,
		"IDEMGATE_GROUP":        s.Group,
		"IDEMGATE_PARTITIONS":   "3",
	}
	for i := 0; i+1 < len(vars); i += 2 {
		s.Vars[vars[i]] = vars[i+1]
	}
	return s
}

// Environ is Vars with extra name/value pairs over them, as KEY=VALUE.
func (s *Stack) Environ(extra ...string) []string {
	vars := maps.Clone(s.Vars)
	for i := 0; i+1 < len(extra); i += 2 {
		vars[extra[i]] = extra[i+1]
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// Count runs a counting query (Count) on the stack's database.
func (s *Stack) Count(sql string, args ...any) int {
	s.T.Helper()
	return Count(s.T, s.DB, sql, args...)
}

// Role starts idemgate (Binary) with args as a process of the test, with
// env (Environ) as its environment.
func (s *Stack) Role(name string, env []string, args ...string) *Proc {
	s.T.Helper()
	return StartProc(s.T, name, env, append([]string{Binary(s.T)}, args...)...)
}

// API is a running serve process.
type API struct {
	*Proc
	Addr string // a held port's (NewPort)
	Base string // http://Addr
}

// Serve starts the API on a held port of its own and waits until it is
// ready; extra are name/value pairs over Vars.
func (s *Stack) Serve(extra ...string) *API {
	s.T.Helper()
	addr := NewPort(s.T).Addr()
	p := s.Role("serve "+addr, s.Environ(append([]string{"IDEMGATE_ADDR", addr}, extra...)...), "serve")
	a := &API{Proc: p, Addr: addr, Base: "http://" + addr}
	a.WaitReady(a.Base, 60*time.Second)
	return a
}

// The log lines that say a projector consumes and the relay publishes.
var (
	ProjectorUp = regexp.MustCompile(`projector consuming`)
	RelayUp     = regexp.MustCompile(`relay publishing`)
)

// Project starts a projector and waits until it consumes.
func (s *Stack) Project(extra ...string) *Proc {
	s.T.Helper()
	p := s.Role("project", s.Environ(extra...), "project")
	p.WaitLog(ProjectorUp, 60*time.Second)
	return p
}

// Relay starts the outbox relay and waits until it publishes.
func (s *Stack) Relay(extra ...string) *Proc {
	s.T.Helper()
	p := s.Role("relay", s.Environ(extra...), "relay")
	p.WaitLog(RelayUp, 60*time.Second)
	return p
}
