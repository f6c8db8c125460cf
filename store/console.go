package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The reads of the operator console (console/): what it shows beyond
// KeyView and Keys. Each takes the tenants an operator may see (nil:
// every tenant).

// Minute is one minute's count on the console's chart.
type Minute struct {
	At    time.Time // the minute's start
	Count int
}

// Throughput counts, per minute over the last span, the claims accepted
// and the responses recorded (completed), oldest minute first; a minute
// without any is absent.
func (s *Store) Throughput(ctx context.Context, tenants []string, span time.Duration) (accepted, completed []Minute, err error) {
	err = s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		var err error
		if accepted, err = minutes(ctx, tx, `SELECT date_trunc('minute', created_at) AS m, count(*) FROM idempotency_claims
WHERE created_at >= now() - ($1::INT8 * INTERVAL '1 microsecond') AND ($2::TEXT[] IS NULL OR tenant_id = ANY($2::TEXT[]))
GROUP BY m ORDER BY m`, span.Microseconds(), tenants); err != nil {
			return err
		}
		completed, err = minutes(ctx, tx, `SELECT date_trunc('minute', created_at) AS m, count(*) FROM outbox
WHERE created_at >= now() - ($1::INT8 * INTERVAL '1 microsecond') AND ($2::TEXT[] IS NULL OR tenant_id = ANY($2::TEXT[]))
GROUP BY m ORDER BY m`, span.Microseconds(), tenants)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read throughput: %w", err)
	}
	return accepted, completed, nil
}

func minutes(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]Minute, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Minute, error) {
		var m Minute
		var n int64
		err := r.Scan(&m.At, &n)
		m.Count = int(n)
		return m, err
	})
}

// Backlog is what waits, for the console's overview.
type Backlog struct {
	// Pending counts the claims not completed; OldestPending is when the
	// oldest was accepted (zero when none).
	Pending       int
	OldestPending time.Time
	// Unacknowledged counts the claims whose event Kafka has not
	// acknowledged (command_pending), the sweeper's work.
	Unacknowledged int
	// Calling counts the pending commands whose upstream call has begun
	// and is not quarantined.
	Calling int
	// OutcomeUnknown counts the quarantined commands.
	OutcomeUnknown int
	// DeadLettered counts the dead-lettered commands still kept.
	DeadLettered int
}

// Backlog counts what waits. The pending count reads every claim kept
// (an anti-join of the claims and the outbox) and the dead letters every
// stored 500 and 502: a console's page, not a hot path; the caller bounds
// it with its context.
func (s *Store) Backlog(ctx context.Context, tenants []string) (b Backlog, err error) {
	err = s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		b = Backlog{}
		var oldest *time.Time
		if err := tx.QueryRow(ctx, `
SELECT count(*), min(c.created_at),
       count(*) FILTER (WHERE `+eventPending+`),
       count(*) FILTER (WHERE a.operation_id IS NOT NULL AND a.outcome_unknown_at IS NULL),
       count(*) FILTER (WHERE a.outcome_unknown_at IS NOT NULL)`+claimsJoined+`
WHERE o.operation_id IS NULL AND ($1::TEXT[] IS NULL OR c.tenant_id = ANY($1::TEXT[]))`, tenants).Scan(
			&b.Pending, &oldest, &b.Unacknowledged, &b.Calling, &b.OutcomeUnknown); err != nil {
			return err
		}
		if oldest != nil {
			b.OldestPending = *oldest
		}
		rows, err := tx.Query(ctx, `SELECT status, content_type, body FROM outbox
WHERE status IN (500, 502) AND content_type = 'application/problem+json' AND ($1::TEXT[] IS NULL OR tenant_id = ANY($1::TEXT[]))`, tenants)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var status int32
			var ctype string
			var body []byte
			if err := rows.Scan(&status, &ctype, &body); err != nil {
				return err
			}
			if deadLettered(int(status), ctype, body) {
				b.DeadLettered++
			}
		}
		return rows.Err()
	})
	if err != nil {
		return Backlog{}, fmt.Errorf("read backlog: %w", err)
	}
	return b, nil
}

// OperationView is everything the console's operation page shows: the
// key's view and what else the tables record of the command's life.
type OperationView struct {
	KeyView
	// Request is the command's request as its event carries it.
	Request []byte
	// LeaseUntil is, while Kafka has not acknowledged its event, when the
	// sweeper emits it again.
	LeaseUntil *time.Time
	// AppliedAt is when a projector recorded the event as applied (its
	// dedup record), while that record is kept.
	AppliedAt *time.Time
	// PublishedAt is when the relay published the response to the
	// results topic.
	PublishedAt *time.Time
	// AcceptedRegion and EmittedRegion: see CommandView.
	AcceptedRegion, EmittedRegion string
	// InFlight: an upstream attempt is under way (or its process died
	// during it); FirstFailureAt is when the first observed failure was.
	InFlight       bool
	FirstFailureAt *time.Time
	// History is what happened off the normal path (command_history):
	// re-emissions, each upstream attempt and its end, quarantines,
	// redrives; oldest first.
	History []HistoryEntry
}

// Operation reads everything recorded of one command, whatever its
// tenant (the caller checks the operator may see it); AppliedAt is
// projector's dedup record.
func (s *Store) Operation(ctx context.Context, projector, operationID string) (v OperationView, found bool, err error) {
	err = s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		v, found = OperationView{}, false
		kv, err := scanKey(tx.QueryRow(ctx, keySelect+` WHERE c.operation_id = $1`, operationID))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		v.KeyView, found = kv, true
		return tx.QueryRow(ctx, `
SELECT c.request, p.lease_until, (SELECT e.processed_at FROM processed_events e WHERE e.projector = $2 AND e.event_id = c.operation_id::TEXT),
       o.sent_at, COALESCE(c.accepted_region, ''), COALESCE(c.emitted_region, ''), COALESCE(a.in_flight, false), a.first_failure_at`+claimsJoined+`
WHERE c.operation_id = $1`, operationID, projector).Scan(&v.Request, &v.LeaseUntil, &v.AppliedAt, &v.PublishedAt,
			&v.AcceptedRegion, &v.EmittedRegion, &v.InFlight, &v.FirstFailureAt)
	})
	if err != nil {
		return v, false, fmt.Errorf("read operation: %w", err)
	}
	if found {
		if v.History, err = s.History(ctx, operationID); err != nil {
			return v, false, err
		}
	}
	return v, found, nil
}
