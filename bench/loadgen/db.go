package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// connectDB opens the load generator's connection. Its reads run at READ
// COMMITTED: at the server's default SERIALIZABLE, the instrument's own
// polling would join the dependency cycles it measures, and abort
// idemgate's transactions as well as its own.
func connectDB(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	cfg.RuntimeParams["default_transaction_isolation"] = "read committed"
	db, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	return db, nil
}

// pgCounters reads the current database's commit and rollback counters.
func pgCounters(ctx context.Context, db *pgx.Conn) (commits, rollbacks int64, err error) {
	err = db.QueryRow(ctx, `SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()`).
		Scan(&commits, &rollbacks)
	if err != nil {
		return 0, 0, fmt.Errorf("pg_stat_database: %w", err)
	}
	return commits, rollbacks, nil
}

// tables are the claim and outbox tables of the system measured (-schema).
type tables struct{ claims, outbox string }

// schemas: idemgate's own, and bench/syncoutbox's (SO), whose claim and
// outbox rows are written in one transaction.
var schemas = map[string]tables{
	"idemgate":   {claims: "idempotency_claims", outbox: "outbox"},
	"syncoutbox": {claims: "sync_claims", outbox: "so_outbox"},
}

// runClaims selects the run's claims, found by tenant and key prefix (the
// prefix holds no LIKE wildcard: Validate allows only [A-Za-z0-9.-]), each
// with its outbox row. A claim is completed when its outbox row exists;
// the row's created_at is the completion time
// (store/migrations/0005_completion.sql), and its sent_at is when the
// relay had its event acknowledged by Kafka (both relays mark a row sent
// only after the acknowledgement).
func (t tables) runClaims() string {
	return `FROM ` + t.claims + ` c LEFT JOIN ` + t.outbox + ` o ON o.operation_id = c.operation_id
WHERE c.tenant_id = $1 AND c.operation = 'payments.create' AND c.idem_key LIKE $2 || '-%'`
}

// progress is one look at the run's claims.
type progress struct {
	claims, completed int
	first, last       *time.Time
}

func readProgress(ctx context.Context, db *pgx.Conn, t tables, tenant, prefix string) (progress, error) {
	var p progress
	err := db.QueryRow(ctx, `SELECT count(*), count(o.operation_id), min(o.created_at), max(o.created_at) `+t.runClaims(),
		tenant, prefix).Scan(&p.claims, &p.completed, &p.first, &p.last)
	if err != nil {
		return p, fmt.Errorf("read claims: %w", err)
	}
	return p, nil
}

// waitComplete polls until every claim of the run is COMPLETED (at least
// want of them), or timeout. loadStart is when the load began: the
// end-to-end rate counts from there to the last completion.
func waitComplete(ctx context.Context, db *pgx.Conn, t tables, tenant, prefix string, want int, loadStart time.Time, timeout time.Duration) (*Completion, error) {
	waitStart := time.Now()
	deadline := waitStart.Add(timeout)
	var p progress
	var err error
	for {
		if p, err = readProgress(ctx, db, t, tenant, prefix); err != nil {
			return nil, err
		}
		if p.claims >= want && p.completed == p.claims {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := &Completion{Claims: p.claims, Completed: p.completed, TimedOut: p.claims < want || p.completed < p.claims}
	if p.last != nil {
		c.WaitS = max(p.last.Sub(waitStart).Seconds(), 0)
		if !loadStart.IsZero() {
			c.E2EPerS = float64(p.completed) / p.last.Sub(loadStart).Seconds()
		}
		if p.completed > 1 {
			c.DrainPerS = float64(p.completed-1) / p.last.Sub(*p.first).Seconds()
		}
	}
	var p50, p90, p99, mx *float64
	err = db.QueryRow(ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.9) WITHIN GROUP (ORDER BY d),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY d), max(d)
FROM (SELECT extract(epoch FROM o.created_at - c.created_at) * 1000 AS d `+t.runClaims()+` AND o.operation_id IS NOT NULL) s`,
		tenant, prefix).Scan(&p50, &p90, &p99, &mx)
	if err != nil {
		return nil, fmt.Errorf("completion latency: %w", err)
	}
	if p50 != nil {
		c.Latency = &Percentiles{P50: *p50, P90: *p90, P99: *p99, Max: *mx}
	}
	return c, nil
}

// waitRelayed waits (up to timeout) until the relay has published the
// outcome of every completed claim of the run, so that its CPU time is
// part of the measure; it returns how many were still unsent.
func waitRelayed(ctx context.Context, db *pgx.Conn, t tables, tenant, prefix string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		var unsent int
		err := db.QueryRow(ctx, `SELECT count(*) `+t.runClaims()+` AND o.operation_id IS NOT NULL AND o.sent_at IS NULL`,
			tenant, prefix).Scan(&unsent)
		if err != nil {
			return 0, fmt.Errorf("read outbox: %w", err)
		}
		if unsent == 0 || time.Now().After(deadline) {
			return unsent, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventStats reads when the run's events were on Kafka (the outbox rows'
// sent_at): how many, their rate from loadStart to the last one, and the
// latency from the claim (the 202 or 201) to the event.
func eventStats(ctx context.Context, db *pgx.Conn, t tables, tenant, prefix string, loadStart time.Time) (*Events, error) {
	var n int
	var last *time.Time
	var p50, p90, p99, mx *float64
	err := db.QueryRow(ctx, `SELECT count(*), max(o.sent_at), percentile_cont(0.5) WITHIN GROUP (ORDER BY d),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY d), percentile_cont(0.99) WITHIN GROUP (ORDER BY d), max(d)
FROM (SELECT o.sent_at, extract(epoch FROM o.sent_at - c.created_at) * 1000 AS d `+t.runClaims()+`
  AND o.sent_at IS NOT NULL) o`, tenant, prefix).Scan(&n, &last, &p50, &p90, &p99, &mx)
	if err != nil {
		return nil, fmt.Errorf("event latency: %w", err)
	}
	e := &Events{Sent: n}
	if last != nil && !loadStart.IsZero() {
		e.E2EPerS = float64(n) / last.Sub(loadStart).Seconds()
	}
	if p50 != nil {
		e.Latency = &Percentiles{P50: *p50, P90: *p90, P99: *p99, Max: *mx}
	}
	return e, nil
}
