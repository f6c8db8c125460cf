// Package sqldb opens idemgate's SQL database (CockroachDB in production,
// PostgreSQL in tests and the embedded dev mode), runs its migrations and
// runs transactions with the retry discipline each server needs.
package sqldb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Flavor names the server behind a DB; it decides how transactions retry.
type Flavor string

// The flavors idemgate speaks to.
const (
	Postgres    Flavor = "postgres"
	CockroachDB Flavor = "cockroachdb"
)

// DB is a connection pool that knows which server it talks to.
type DB struct {
	Pool   *pgxpool.Pool
	Flavor Flavor
	// Name labels the pool's transaction metrics ("api", "projector").
	Name      string
	metrics   *TxMetrics
	txTimeout time.Duration
}

// Options tune a pool.
type Options struct {
	// MaxConns bounds the pool (0: pgx's default, 4 or the CPU count).
	MaxConns int32
	// StatementTimeout bounds every statement on the server
	// (statement_timeout; 0: the server's default), so that a statement
	// never outlives the request or the attempt that issued it.
	StatementTimeout time.Duration
	// TxTimeout bounds each transaction (InTx, InReadCommitted,
	// InSnapshot, InPipeline: every attempt, BEGIN to COMMIT) on the
	// client's side when the caller's context has no earlier deadline
	// (0: no bound). StatementTimeout is the server's: a server that
	// never receives the statement, behind a connection hung half-open,
	// never applies it, and a caller without a deadline of its own (the
	// sweeper, the janitor) would wait for good.
	TxTimeout time.Duration
	// Name labels the pool's metrics; default "db".
	Name string
	// Metrics counts the pool's transaction retries; may be nil.
	Metrics *TxMetrics
}

// DefaultConnectTimeout bounds each attempt at a new connection when
// DATABASE_URL sets no connect_timeout. pgxpool builds connections in the
// background, detached from the caller's deadline, and counts each one
// under construction against the pool's size: without a bound, attempts
// made through a link hung half-open (a partition that drops packets, a
// host that vanished) never end, and the pool serves nothing even once
// the link is back. A healthy connection takes milliseconds.
const DefaultConnectTimeout = 5 * time.Second

// ErrBadURL reports a DATABASE_URL that cannot be parsed: a
// configuration mistake, not an outage, so never worth retrying.
var ErrBadURL = errors.New("sqldb: DATABASE_URL cannot be parsed")

// Open connects to url, checks the server answers and detects its flavor
// from version(). Every transaction idemgate opens is SERIALIZABLE,
// whatever the server's default.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.StatementTimeout > 0 {
		ms := strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = ms
		// A client whose connection hangs half-open mid-transaction never
		// sends its COMMIT: without this the server keeps the transaction,
		// and its row locks, for good, and every writer of those rows (the
		// sweeper re-emitting a pending command) times out behind it. The
		// server ends such a session after the same bound. CockroachDB has
		// the same session variable.
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = ms
	}
	if opts.Name == "" {
		opts.Name = "db"
	}
	// Checked as a connection is handed out, not as it is released: an
	// AfterRelease hook makes pgxpool release every connection in a
	// goroutine of its own, on the hot path.
	cfg.PrepareConn = notStandby
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sqldb: open pool: %w", err)
	}
	var version string
	if err := pool.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		pool.Close()
		return nil, fmt.Errorf("sqldb: connect: %w", err)
	}
	flavor := Postgres
	if strings.Contains(version, "CockroachDB") {
		flavor = CockroachDB
	}
	db := &DB{Pool: pool, Flavor: flavor, Name: opts.Name, metrics: opts.Metrics, txTimeout: opts.TxTimeout}
	db.initMetrics()
	return db, nil
}

// Close closes the pool; its use is reported no more.
func (db *DB) Close() {
	if db.metrics != nil {
		db.metrics.pools.remove(db.Name, db.Pool)
	}
	db.Pool.Close()
}

// CloseWithin closes the pool, waiting at most d, and reports whether
// every connection was closed in time. pgx closes a connection that a
// cancelled statement left in use in the background, draining it for up
// to 15 s: behind a link hung half-open, nothing ever comes, and a
// process stopping would wait that long for the pool. A process about to
// exit need not wait: its sockets close with it.
func (db *DB) CloseWithin(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		db.Close()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// ErrStandby reports a connection to a server that takes no writes: a
// standby (a replica, or an old primary that rejoined as one). Transient:
// the next connection the pool opens goes, with
// target_session_attrs=read-write, to whichever server is the primary now.
var ErrStandby = errors.New("sqldb: the server is a read-only standby")

// notStandby is the pool's check before it hands out a connection: one
// whose server is a standby is destroyed and the caller gets ErrStandby,
// a transient error (the API answers 503 + Retry-After), instead of
// SQLSTATE 25006 at its first write. target_session_attrs=read-write is
// checked only when a connection opens; the server reports a change of
// in_hot_standby and default_transaction_read_only to its sessions as it
// happens (PostgreSQL 14 and later), so reading them costs no round trip.
func notStandby(_ context.Context, c *pgx.Conn) (bool, error) {
	if isStandby(c) {
		return false, ErrStandby
	}
	return true, nil
}

// isStandby reads what the server last reported of itself. CockroachDB
// reports neither setting: never a standby.
func isStandby(c *pgx.Conn) bool {
	pc := c.PgConn()
	return pc.ParameterStatus("in_hot_standby") == "on" || pc.ParameterStatus("default_transaction_read_only") == "on"
}

// Ping reports whether the database answers; /readyz uses it.
func (db *DB) Ping(ctx context.Context) error { return db.Pool.Ping(ctx) }

var serializable = pgx.TxOptions{IsoLevel: pgx.Serializable}

// bound is ctx with the pool's TxTimeout, unless ctx ends sooner.
func (db *DB) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if db.txTimeout <= 0 {
		return ctx, func() {}
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= db.txTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, db.txTimeout)
}
