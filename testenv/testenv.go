// Package testenv gives integration tests real backends: a PostgreSQL
// server (DATABASE_URL's, or a private one started for the test binary)
// with a fresh database per test, and Kafka (KAFKA_BROKERS's real broker,
// or an in-process kfake cluster per test) with topics of the test's own.
// Nothing here is a mock.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/pgserver"
	"github.com/idemgate/idemgate/sqldb"
)

// Env is the test binary's backends.
type Env struct {
	adminURL string
	brokers  []string
}

// Run starts the backends, runs the tests and exits; call it from
// TestMain:
//
//	var env *testenv.Env
//	func TestMain(m *testing.M) { testenv.Run(m, &env) }
func Run(m *testing.M, env **Env) {
	if !flag.Parsed() {
		flag.Parse() // testing.Short needs the flags
	}
	e, stop, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		removeBinary()
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	stop()
	os.Exit(code)
}

// Start starts the backends for a TestMain that has work of its own
// around the tests (Run does not return); call stop after m.Run: it also
// removes the binary the tests built (Binary).
func Start() (env *Env, stop func(), err error) {
	if !flag.Parsed() {
		flag.Parse() // testing.Short needs the flags
	}
	return start()
}

// With -short (the fast tier) start starts nothing and reads neither
// variable: no PostgreSQL (NewDatabase skips the test), and Kafka is
// always kfake, in-process.
func start() (*Env, func(), error) {
	if testing.Short() {
		return &Env{}, removeBinary, nil
	}
	e := &Env{adminURL: os.Getenv("DATABASE_URL")}
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		e.brokers = strings.Split(b, ",")
	}
	if e.adminURL != "" {
		return e, removeBinary, nil
	}
	dir, err := dataDir("testpg")
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The tests' settings: the same server as scripts/pg.sh's (NoFsync).
	srv, err := pgserver.Start(ctx, pgserver.Config{DataDir: dir + "/pg", Logger: Quiet, NoFsync: true})
	if err != nil {
		return nil, nil, fmt.Errorf("no DATABASE_URL, and a private PostgreSQL could not start: %w", err)
	}
	e.adminURL = srv.URL()
	return e, func() {
		_ = srv.Stop(context.Background())
		_ = os.RemoveAll(dir)
		removeBinary()
	}, nil
}

// RealKafka reports whether tests run on a real broker (KAFKA_BROKERS).
func (e *Env) RealKafka() bool { return len(e.brokers) > 0 }

// NewDatabase creates an empty database for t, migrated with the given
// sets (none: an empty database), and drops it when t ends; with -short
// it skips t instead. It returns
// the database's URL.
func (e *Env) NewDatabase(t testing.TB, migrations ...sqldb.MigrationSet) string {
	t.Helper()
	if e.adminURL == "" && testing.Short() {
		t.Skip("-short: needs PostgreSQL")
	}
	ctx := context.Background()
	name := "t_" + Random(6)
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", redact(e.adminURL), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	u, _ := url.Parse(e.adminURL)
	u.Path = "/" + name
	dbURL := u.String()
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, e.adminURL)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	db, err := sqldb.Open(ctx, dbURL, sqldb.Options{MaxConns: 2})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx, migrations...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dbURL
}

// OpenDB opens a pool on url, closed when t ends.
func OpenDB(t testing.TB, url string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), url, sqldb.Options{MaxConns: 10, Name: "test"})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

// Kafka returns seed brokers for t: the real broker when KAFKA_BROKERS is
// set, otherwise a kfake cluster of t's own.
func (e *Env) Kafka(t testing.TB) []string {
	t.Helper()
	if len(e.brokers) > 0 {
		return e.brokers
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("testenv: kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// Random returns n random bytes in hex: unique names for topics, groups
// and databases.
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "DATABASE_URL"
	}
	return p.Redacted()
}

// Count runs a counting query in a retried transaction: at SERIALIZABLE a
// read can be the victim of a dependency cycle with a projector's writes.
func Count(t testing.TB, db *sqldb.DB, sql string, args ...any) int {
	t.Helper()
	var n int
	err := db.InTx(context.Background(), func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), sql, args...).Scan(&n)
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Claims is the operation id of every claim in db, by its key.
func Claims(t testing.TB, db *sqldb.DB) map[string]string {
	t.Helper()
	claims := map[string]string{}
	rows, err := db.Pool.Query(context.Background(), `SELECT idem_key, operation_id::TEXT FROM idempotency_claims`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var key, op string
		if err := rows.Scan(&key, &op); err != nil {
			t.Fatal(err)
		}
		claims[key] = op
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return claims
}

// KafkaOptions are the options of an idemgate client of brokers with the
// default Kafka settings, the roles' own (events.KafkaConfig).
func KafkaOptions(t testing.TB, brokers []string) []kgo.Opt {
	t.Helper()
	opts, err := events.KafkaConfig{}.ClientOptions(brokers)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}
