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
	Tenant      string
	Operation   string
	Key         string
	OperationID string
	State       idemgate.ClaimState // derived: see claimState
	Fingerprint []byte
	Target      string
	AcceptedAt  time.Time
	ExpiresAt   time.Time
	CompletedAt *time.Time
	// Reemissions counts the sweeper's re-emissions of the command's
	// event (the column emit_attempts).
	Reemissions int
	Calls       *CallAttempts
	Response    *idemgate.Response
	// DeadLettered: completed with the failure idemgate stores when it
	// gives up (a 500 /processing-failed or a 502 /upstream-failed),
	// which redrive can drive again.
	DeadLettered bool
}

// claimState derives a claim's state from the rows that exist for it
// (the states are not stored, so that no writer updates another's row):
// completed once its response is recorded (an outbox row),
// outcome_unknown while its call is quarantined, accepted while Kafka has
// not acknowledged its event (a command_pending row not marked
// acknowledged: eventPending), published
// otherwise. stateConds says the same in SQL, for Keys.
func claimState(resp *idemgate.Response, calls *CallAttempts, pending bool) idemgate.ClaimState {
	switch {
	case resp != nil:
		return idemgate.ClaimCompleted
	case calls != nil && calls.OutcomeUnknownAt != nil:
		return idemgate.ClaimOutcomeUnknown
	case pending:
		return idemgate.ClaimAccepted
	}
	return idemgate.ClaimPublished
}

// stateConds selects, over claimsJoined, the claims in each state, as
// claimState derives it; ClaimPending selects every claim not completed.
var stateConds = map[idemgate.ClaimState]string{
	idemgate.ClaimCompleted:      `o.operation_id IS NOT NULL`,
	idemgate.ClaimOutcomeUnknown: `o.operation_id IS NULL AND a.outcome_unknown_at IS NOT NULL`,
	idemgate.ClaimAccepted:       `o.operation_id IS NULL AND a.outcome_unknown_at IS NULL AND ` + eventPending,
	idemgate.ClaimPublished:      `o.operation_id IS NULL AND a.outcome_unknown_at IS NULL AND NOT (` + eventPending + `)`,
	idemgate.ClaimPending:        `o.operation_id IS NULL`,
}

// eventPending is true, over claimsJoined, while Kafka has not
// acknowledged the claim's event: its pending row exists, not yet marked
// acknowledged (with adoption, the row outlives the acknowledgement).
const eventPending = `(p.operation_id IS NOT NULL AND p.acked_region IS NULL)`

// claimsJoined is the claims with the rows their state derives from: the
// recorded response (o), the pending event (p) and the call's recovery
// point (a).
const claimsJoined = `
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
LEFT JOIN command_pending p ON p.operation_id = c.operation_id
LEFT JOIN call_attempts a ON a.operation_id = c.operation_id`

var keySelect = `
SELECT c.tenant_id, c.operation, c.idem_key, c.operation_id::TEXT, ` + eventPending + `,
       c.fingerprint, c.target, c.created_at, c.expires_at, o.created_at, c.emit_attempts,
       o.status, o.content_type, o.location, o.body, ` + callColumns + claimsJoined

func scanKey(row pgx.Row) (KeyView, error) {
	var v KeyView
	var pending bool
	var resp storedResponse
	var calls callScan
	err := row.Scan(append([]any{&v.Tenant, &v.Operation, &v.Key, &v.OperationID, &pending, &v.Fingerprint, &v.Target, &v.AcceptedAt,
		&v.ExpiresAt, &v.CompletedAt, &v.Reemissions, &resp.status, &resp.ctype, &resp.loc, &resp.body}, calls.dest()...)...)
	if err != nil {
		return v, err
	}
	v.Response = resp.response()
	if v.Response != nil {
		v.DeadLettered = deadLettered(v.Response.Status, v.Response.ContentType, v.Response.Body)
	}
	v.Calls = calls.view()
	v.State = claimState(v.Response, v.Calls, pending)
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
	// State keeps the claims in that state; ClaimPending (or "") every
	// claim not completed.
	State idemgate.ClaimState
	// DeadLettered keeps only the dead-lettered claims (completed with a
	// stored 500 /processing-failed or 502 /upstream-failed: redrive
	// drives them again), whatever State says.
	DeadLettered bool
	// AnyState keeps every claim, whatever State says.
	AnyState bool
	// Calling keeps, whatever State says, the pending claims whose
	// upstream call has begun and is not quarantined: waiting for their
	// upstream (in a call, or between attempts).
	Calling bool
	// OlderThan keeps claims accepted at least that long ago.
	OlderThan time.Duration
	Limit     int
	// Tenants keeps only those tenants' claims (nil: every tenant's);
	// Operation, when set, only that operation's.
	Tenants   []string
	Operation string
	// NewestFirst lists the newest claims first (else the oldest).
	NewestFirst bool
	// After, when set, is the keyset cursor of the last claim of the page
	// before: the list goes on after it, in the list's order.
	After *KeyCursor
}

// KeyCursor is a claim's place in a list: its accepted time and its
// operation id, which breaks ties.
type KeyCursor struct {
	AcceptedAt  time.Time
	OperationID string
}

// Cursor is v's place in a list, for KeyFilter.After.
func (v KeyView) Cursor() KeyCursor {
	return KeyCursor{AcceptedAt: v.AcceptedAt, OperationID: v.OperationID}
}

// Keys lists claims by filter, oldest first.
func (s *Store) Keys(ctx context.Context, f KeyFilter) ([]KeyView, error) {
	state := f.State
	switch {
	case f.DeadLettered:
		state = idemgate.ClaimCompleted
	case state == "":
		state = idemgate.ClaimPending
	}
	cond, ok := stateConds[state]
	if !ok {
		return nil, fmt.Errorf("list keys: no such state %q", state)
	}
	if f.DeadLettered {
		cond += ` AND o.status IN (500, 502) AND o.content_type = 'application/problem+json'`
	}
	if f.Calling {
		cond = `o.operation_id IS NULL AND a.operation_id IS NOT NULL AND a.outcome_unknown_at IS NULL`
	}
	if f.AnyState {
		cond = `TRUE`
	}
	args := []any{f.OlderThan.Microseconds(), f.Limit}
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Tenants != nil {
		cond += ` AND c.tenant_id = ANY(` + arg(f.Tenants) + `::TEXT[])`
	}
	if f.Operation != "" {
		cond += ` AND c.operation = ` + arg(f.Operation)
	}
	order, cmp := `c.created_at, c.operation_id`, ">"
	if f.NewestFirst {
		order, cmp = `c.created_at DESC, c.operation_id DESC`, "<"
	}
	if f.After != nil {
		cond += ` AND (c.created_at, c.operation_id) ` + cmp + ` (` + arg(f.After.AcceptedAt) + `::TIMESTAMPTZ, ` + arg(f.After.OperationID) + `::UUID)`
	}
	var out []KeyView
	err := s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, keySelect+` WHERE `+cond+`
  AND c.created_at <= now() - ($1::INT8 * INTERVAL '1 microsecond')
ORDER BY `+order+` LIMIT $2`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scanKey(rows)
			if err != nil {
				return err
			}
			if f.DeadLettered && !v.DeadLettered {
				continue // a 500 or 502 the applier or the upstream answered: final, not dead-lettered
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
