package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
)

// Unsent is a recorded response the relay has not published yet, with
// the command it answers.
type Unsent struct {
	// Command names the command: its operation id, tenant, operation,
	// key and the trace of the request that claimed it (not its target
	// or request, which the result event does not carry).
	Command    idemgate.Command
	Response   idemgate.Response
	RecordedAt time.Time
}

// UnsentResponses reads up to limit recorded responses not yet
// published, oldest first, among those recorded more than olderThan ago
// (by the database's clock, which recorded them): the projector publishes
// the newer ones itself.
func (s *Store) UnsentResponses(ctx context.Context, limit int, olderThan time.Duration) (out []Unsent, err error) {
	err = s.db.InReadCommitted(ctx, func(tx pgx.Tx) error {
		out, err = unsentResponses(ctx, tx, limit, olderThan)
		return err
	})
	return out, err
}

func unsentResponses(ctx context.Context, tx pgx.Tx, limit int, olderThan time.Duration) ([]Unsent, error) {
	rows, err := tx.Query(ctx, `
SELECT o.operation_id::TEXT, o.tenant_id, o.operation, COALESCE(c.idem_key, ''), o.status, o.content_type, o.location, o.body, o.created_at,
       COALESCE(c.traceparent, '')
FROM outbox o
LEFT JOIN idempotency_claims c ON c.operation_id = o.operation_id
WHERE o.sent_at IS NULL AND o.created_at < now() - $2::INTERVAL
ORDER BY o.created_at
LIMIT $1`, limit, olderThan)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Unsent, error) {
		var u Unsent
		c, r := &u.Command, &u.Response
		err := row.Scan(&c.OperationID, &c.Tenant, &c.Operation, &c.IdempotencyKey, &r.Status,
			&r.ContentType, &r.Location, &r.Body, &u.RecordedAt, &c.TraceParent)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// OutboxBacklog counts the recorded responses not yet published and says
// when the oldest was recorded.
func (s *Store) OutboxBacklog(ctx context.Context) (n int, oldest time.Time, err error) {
	var at *time.Time
	if err := s.db.InReadCommitted(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL`).Scan(&n, &at)
	}); err != nil {
		return 0, time.Time{}, fmt.Errorf("read outbox backlog: %w", err)
	}
	if at != nil {
		oldest = *at
	}
	return n, oldest, nil
}

// Recorded names one recorded response: its command and when it was
// recorded (the outbox row's created_at); and, for MarkSent, when Kafka
// acknowledged its result event (by the publisher's clock).
type Recorded struct {
	OperationID string
	At          time.Time
	SentAt      time.Time
}

// MarkSent records, in one statement, that the outcomes were published,
// each at its SentAt (so that a publisher may gather its marks and still
// record when each event was on Kafka). Each row is named with the time
// it was recorded, so that a mark never lands on a newer outcome of the
// same command (a redrive deletes the row and the projector records
// another) whose event nobody published. The mark is idempotent, so it
// runs at READ COMMITTED, where it cannot collide with the projectors
// recording new outcomes.
func (s *Store) MarkSent(ctx context.Context, rows []Recorded) error {
	if len(rows) == 0 {
		return nil
	}
	ids, ats, sent := make([]string, len(rows)), make([]time.Time, len(rows)), make([]time.Time, len(rows))
	for i, r := range rows {
		ids[i], ats[i], sent[i] = r.OperationID, r.At, r.SentAt
	}
	return s.db.InReadCommitted(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE outbox o SET sent_at = m.sent_at
FROM unnest($1::UUID[], $2::TIMESTAMPTZ[], $3::TIMESTAMPTZ[]) AS m(operation_id, created_at, sent_at)
WHERE o.operation_id = m.operation_id AND o.created_at = m.created_at AND o.sent_at IS NULL`, planned, ids, ats, sent); err != nil {
			return fmt.Errorf("mark outbox sent: %w", err)
		}
		return nil
	})
}

// ErrNotDeadLettered says a redrive was asked for a command that is neither
// dead-lettered nor quarantined as outcome unknown.
var ErrNotDeadLettered = errors.New("the command is neither dead-lettered nor of unknown outcome")

// Redrive drives a command again: a dead-lettered one (a stored 500
// /processing-failed, or a 502 /upstream-failed once an upstream's
// attempts all failed), whose stored failure it removes with projector's
// dedup record, or one quarantined as outcome unknown, which has none. It
// deletes the call's recovery point (a new budget) and puts the claim
// back to accepted (a command_pending row, its lease expired), so that
// the sweeper emits it once more. Nothing was recorded as applied for
// it, so applying it now is its one effect; for an upstream, one more
// call under the same Idempotency-Key, which resolves an unknown
// outcome: an upstream that applied it answers what it answered then.
func (s *Store) Redrive(ctx context.Context, projector, operationID string) error {
	return s.db.InTx(ctx, func(tx pgx.Tx) error {
		var status *int32
		var ctype *string
		var body []byte
		var unknown bool
		err := tx.QueryRow(ctx, `SELECT o.status, o.content_type, o.body, a.outcome_unknown_at IS NOT NULL
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
LEFT JOIN call_attempts a ON a.operation_id = c.operation_id
WHERE c.operation_id = $1`, operationID).Scan(&status, &ctype, &body, &unknown)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("operation %s: %w (no such claim)", operationID, ErrNotDeadLettered)
		}
		if err != nil {
			return fmt.Errorf("read outcome: %w", err)
		}
		switch {
		case status == nil && !unknown:
			return fmt.Errorf("operation %s: %w (it is pending, with no recorded outcome)", operationID, ErrNotDeadLettered)
		case status != nil && !deadLettered(int(*status), deref(ctype), body):
			return fmt.Errorf("operation %s: %w (its outcome is %d)", operationID, ErrNotDeadLettered, *status)
		}
		for _, stmt := range []string{
			`DELETE FROM outbox WHERE operation_id = $1`,
			`DELETE FROM call_attempts WHERE operation_id = $1`,
			// So that the sweeper emits it again, at once.
			`INSERT INTO command_pending (operation_id, lease_until) VALUES ($1, now())
ON CONFLICT (operation_id) DO UPDATE SET lease_until = excluded.lease_until, acked_region = NULL`,
		} {
			if _, err := tx.Exec(ctx, stmt, operationID); err != nil {
				return fmt.Errorf("redrive: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM processed_events WHERE projector = $1 AND event_id = $2`, projector, operationID); err != nil {
			return fmt.Errorf("redrive: delete dedup record: %w", err)
		}
		was := "outcome unknown"
		if status != nil {
			was = fmt.Sprintf("dead-lettered with %d", *status)
		}
		return s.note(ctx, tx, operationID, HistoryRedriven, 0, was)
	})
}

// deadLettered tells the outcomes the projector stores when it gives up
// (idemgate's own problems) from a response an applier or an upstream
// gave, which must never be redriven.
func deadLettered(status int, ctype string, body []byte) bool {
	if ctype != idemgate.ContentTypeProblem {
		return false
	}
	var p idemgate.Problem
	if json.Unmarshal(body, &p) != nil {
		return false
	}
	return status == http.StatusInternalServerError && p.OfType(idemgate.ProblemProcessingFailed) ||
		status == http.StatusBadGateway && p.OfType(idemgate.ProblemUpstreamFailed)
}
