// Package store owns every SQL statement on idemgate's core tables: the
// claims (idempotency_claims), the recorded responses (outbox) and the
// projectors' dedup records (processed_events). Everything else calls it.
// Transactions stay inside: callers see claims and responses, and the one
// closure that runs inside a transaction (an applier's effect) is handed
// a pgx.Tx it must not keep.
package store

import (
	"context"
	"embed"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations is the core schema, applied before any module's.
func Migrations() sqldb.MigrationSet {
	sub, _ := fs.Sub(migrations, "migrations") // a constant, valid path
	return sqldb.MigrationSet{Module: "core", FS: sub}
}

// Store is the SQL store of the core tables.
type Store struct {
	db    *sqldb.DB
	lease time.Duration
	// region is IDEMGATE_REGION: written on the claims this store accepts
	// and the events it emits (docs/MULTI-REGION.md); "" writes NULL.
	region string
	// adopt keeps a command's pending row once its region's Kafka
	// acknowledged it, until it completes, so that another region adopts
	// it if this one is lost first (WithAdoption).
	adopt bool
}

// DefaultLease is how long a claim's event may go unacknowledged before
// the sweeper emits it again: a thousand times a healthy acknowledgement
// (milliseconds), long enough to ride out a Kafka leader election
// without emitting twice, short enough that a command whose emit was lost
// (its API process died) is on its way within seconds.
const DefaultLease = 10 * time.Second

// New returns the store. lease is how long the API has to see a claim's
// event acknowledged before the sweeper re-emits it (DefaultLease when 0).
func New(db *sqldb.DB, lease time.Duration) *Store {
	if lease <= 0 {
		lease = DefaultLease
	}
	return &Store{db: db, lease: lease}
}

// WithRegion returns the store writing region (IDEMGATE_REGION) on the
// claims it accepts (accepted_region, emitted_region) and on those its
// sweeper re-emits (emitted_region).
func (s *Store) WithRegion(region string) *Store {
	c := *s
	c.region = region
	return &c
}

// WithAdoption returns the store keeping the pending row of a command
// whose event Kafka acknowledged, marked with the store's region and a
// new lease, until the command completes: once that lease has passed, the
// sweeper of another region emits it to its own Kafka (it adopts it),
// and the sweeper of this region deletes the row once completed. Set it
// when more than one region shares the database (docs/MULTI-REGION.md);
// one region alone deletes the row on the acknowledgement, which costs
// nothing later.
func (s *Store) WithAdoption() *Store {
	c := *s
	c.adopt = true
	return &c
}

// Region is the region the store writes ("" for none).
func (s *Store) Region() string { return s.region }

// DB is the database the store runs on.
func (s *Store) DB() *sqldb.DB { return s.db }

// planned runs a statement that takes a list of ids (= ANY($1)) as an
// unnamed statement, planned for the ids it is given. As a prepared
// statement, PostgreSQL may settle on a generic plan while the table is
// small, a sequential scan, and keep it as the table grows: the
// projector's check of open claims read every claim of the table on each
// run (2,643 scans, 52 million rows read, in 30 s of load on a fresh
// database).
const planned = pgx.QueryExecModeExec

// Read runs fn in a read-only snapshot (sqldb.InSnapshot): a module's
// read model shares the database but not these tables. fn may run more
// than once.
func (s *Store) Read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.db.InSnapshot(ctx, fn)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
