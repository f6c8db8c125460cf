package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
)

// KeyView is everything known of a claimed key: for support teams
// (GET /v1/idempotency-keys) and operators (idemgate inspect, list).
type KeyView struct {
	Tenant         string
	Operation      string
	Key            string
	OperationID    string
	State          string // ACCEPTED, PUBLISHED, OUTCOME_UNKNOWN or COMPLETED (derived)
	Fingerprint    []byte
	Target         string
	AcceptedAt     time.Time
	ExpiresAt      time.Time
	CompletedAt    *time.Time
	EmitAttempts   int // re-emissions by the sweeper
	Calls          *CallAttempts
	Response       *idemgate.Response
	DeadLettered   bool // completed with a stored processing-failed or upstream-failed
	ResponseStatus int
}

var keySelect = `
SELECT c.tenant_id, c.operation, c.idem_key, c.operation_id::TEXT,
       CASE WHEN o.operation_id IS NOT NULL THEN 'COMPLETED' WHEN a.outcome_unknown_at IS NOT NULL THEN 'OUTCOME_UNKNOWN'
            WHEN p.operation_id IS NOT NULL THEN 'ACCEPTED' ELSE 'PUBLISHED' END,
       c.fingerprint, c.target, c.created_at, c.expires_at, o.created_at, c.emit_attempts,
       o.status, o.content_type, o.location, o.body, ` + callColumns + `
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
LEFT JOIN command_pending p ON p.operation_id = c.operation_id
LEFT JOIN call_attempts a ON a.operation_id = c.operation_id`

func scanKey(row pgx.Row) (KeyView, error) {
	var v KeyView
	var resp storedResponse
	var calls callScan
	err := row.Scan(append([]any{&v.Tenant, &v.Operation, &v.Key, &v.OperationID, &v.State, &v.Fingerprint, &v.Target, &v.AcceptedAt,
		&v.ExpiresAt, &v.CompletedAt, &v.EmitAttempts, &resp.status, &resp.ctype, &resp.loc, &resp.body}, calls.dest()...)...)
	if err != nil {
		return v, err
	}
	v.Response = resp.response()
	if v.Response != nil {
		v.ResponseStatus = v.Response.Status
		v.DeadLettered = deadLettered(v.Response.Status, v.Response.ContentType, v.Response.Body)
	}
	v.Calls = calls.view()
	return v, nil
}

// Key reads the claim of (tenant, operation, key); found is false when
// there is none (never claimed, or forgotten after its retention).
func (s *Store) Key(ctx context.Context, tenant, operation, key string) (v KeyView, found bool, err error) {
	return s.oneKey(ctx, keySelect+` WHERE c.tenant_id = $1 AND c.operation = $2 AND c.idem_key = $3`, tenant, operation, key)
}

// KeyByOperation reads the claim of an operation id, whatever its tenant
// (an operator's look-up).
func (s *Store) KeyByOperation(ctx context.Context, operationID string) (v KeyView, found bool, err error) {
	return s.oneKey(ctx, keySelect+` WHERE c.operation_id = $1`, operationID)
}

func (s *Store) oneKey(ctx context.Context, sql string, args ...any) (v KeyView, found bool, err error) {
	err = s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		var err error
		v, err = scanKey(tx.QueryRow(ctx, sql, args...))
		if errors.Is(err, pgx.ErrNoRows) {
			found = false
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return v, false, fmt.Errorf("read key: %w", err)
	}
	return v, found, nil
}

// KeyFilter selects claims for idemgate list.
type KeyFilter struct {
	// Failed: completed with a stored processing-failed or upstream-failed
	// (dead-lettered; redrive drives them again). OutcomeUnknown:
	// quarantined as outcome unknown (redrive calls again). Otherwise
	// pending: not completed, the quarantined ones included.
	Failed, OutcomeUnknown bool
	// OlderThan keeps claims accepted at least that long ago.
	OlderThan time.Duration
	Limit     int
}

// Keys lists claims by filter, oldest first.
func (s *Store) Keys(ctx context.Context, f KeyFilter) ([]KeyView, error) {
	cond := `o.operation_id IS NULL`
	switch {
	case f.Failed:
		cond = `o.operation_id IS NOT NULL AND o.status IN (500, 502) AND o.content_type = 'application/problem+json'`
	case f.OutcomeUnknown:
		cond = `o.operation_id IS NULL AND a.outcome_unknown_at IS NOT NULL`
	}
	var out []KeyView
	err := s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, keySelect+` WHERE `+cond+`
  AND c.created_at <= now() - ($1::INT8 * INTERVAL '1 microsecond')
ORDER BY c.created_at LIMIT $2`, f.OlderThan.Microseconds(), f.Limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scanKey(rows)
			if err != nil {
				return err
			}
			if f.Failed && !v.DeadLettered {
				continue // a 500 or 502 the applier or the upstream answered: final, not failed
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}
