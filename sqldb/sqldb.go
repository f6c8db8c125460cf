// Package sqldb opens idemgate's SQL database (CockroachDB in production,
// PostgreSQL in tests and the embedded dev mode), runs its migrations and
// runs transactions with the retry discipline each server needs.
package sqldb

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
}

// ErrBadURL reports a DATABASE_URL that cannot be parsed: a
// configuration mistake, not an outage, so never worth retrying.
var ErrBadURL = errors.New("sqldb: DATABASE_URL cannot be parsed")

// Open connects to url, checks the server answers and detects its flavor
// from version(). Every transaction idemgate opens is SERIALIZABLE,
// whatever the server's default.
func Open(ctx context.Context, url string, maxConns int32) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
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
	return &DB{Pool: pool, Flavor: flavor}, nil
}

// Close closes the pool.
func (db *DB) Close() { db.Pool.Close() }

// Ping reports whether the database answers; /readyz uses it.
func (db *DB) Ping(ctx context.Context) error { return db.Pool.Ping(ctx) }

var serializable = pgx.TxOptions{IsoLevel: pgx.Serializable}
