package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
)

// ClaimKeys claims every request's key in ONE transaction, sent in one
// round trip, and returns, in order, what each request found. A key
// already claimed is returned as it is (with its response once
// completed); a completed key past its retention is claimed anew.
// Several requests may share one call, and so one commit; a key repeated
// among them is claimed by the first, and the others see that claim.
func (s *Store) ClaimKeys(ctx context.Context, reqs []idemgate.ClaimRequest) ([]idemgate.Claim, error) {
	out := make([]idemgate.Claim, len(reqs))
	expired := make([]bool, len(reqs))
	err := s.db.InPipeline(ctx, func(b *pgx.Batch) {
		for _, req := range reqs {
			b.Queue(claimSQL, req.Tenant, req.Operation, req.Key, uuid.NewString(), req.Fingerprint,
				req.Target, []byte(req.Request), s.lease.Microseconds(), req.Retention.Microseconds(), req.TraceParent, s.region)
		}
	}, func(br pgx.BatchResults) error {
		for i := range reqs {
			var c idemgate.Claim
			var resp storedResponse
			if err := br.QueryRow().Scan(&c.Inserted, &c.OperationID, &c.Fingerprint, &c.AcceptedAt, &expired[i],
				&resp.status, &resp.ctype, &resp.loc, &resp.body, &c.OutcomeUnknown); err != nil {
				return fmt.Errorf("claim: %w", err)
			}
			c.Response = resp.response()
			out[i] = c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim keys: %w", err)
	}
	for i, req := range reqs {
		if expired[i] {
			// Completed and past its retention, not yet deleted by the
			// janitor: the key is free again and this request is a new
			// command (rare: a transaction of its own).
			if out[i], err = s.reclaim(ctx, req); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// claimSQL inserts the claim, and its command_pending row for the sweeper,
// or, when the key is taken, reads the claim that holds it (with its
// response once completed, or whether it is quarantined as outcome
// unknown): one statement, so that a group of claims
// pipelines. In one transaction, a statement sees
// the claims its predecessors inserted; at SERIALIZABLE, a key claimed by
// a concurrent transaction that committed since this one began is a
// serialization failure, and the retry sees it. $11 is the region of the
// store (NULL when none is set): it accepts the claim and, at once, emits
// it, so both region columns are written here, at no extra round trip.
const claimSQL = `
WITH ins AS (
    INSERT INTO idempotency_claims
        (tenant_id, operation, idem_key, operation_id, fingerprint, target, request,
         created_at, lease_until, expires_at, traceparent, accepted_region, emitted_region)
    VALUES ($1, $2, $3, $4, $5, $6, $7,
         now(), now() + ($8::INT8 * INTERVAL '1 microsecond'), now() + ($9::INT8 * INTERVAL '1 microsecond'), $10,
         NULLIF($11::TEXT, ''), NULLIF($11::TEXT, ''))
    ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
    RETURNING operation_id, fingerprint, created_at, lease_until),
pending AS (
    INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins)
SELECT true, operation_id::TEXT, fingerprint, created_at, false,
       NULL::INT4, NULL::TEXT, NULL::TEXT, NULL::BYTEA, false
FROM ins
UNION ALL
SELECT false, c.operation_id::TEXT, c.fingerprint, c.created_at, c.expires_at <= now() AND o.operation_id IS NOT NULL,
       o.status, o.content_type, o.location, o.body, a.outcome_unknown_at IS NOT NULL AND o.operation_id IS NULL
FROM idempotency_claims c
LEFT JOIN outbox o ON o.operation_id = c.operation_id
LEFT JOIN call_attempts a ON a.operation_id = c.operation_id
WHERE c.tenant_id = $1 AND c.operation = $2 AND c.idem_key = $3 AND NOT EXISTS (SELECT 1 FROM ins)`

// HotPathSQL returns statements of the hot path by name, for the tools
// that show their plans (scripts/bench-growth.sh runs them under EXPLAIN,
// through bench/growth -sql): "claim" is serve's claim of a key.
func HotPathSQL() map[string]string {
	return map[string]string{"claim": claimSQL}
}

// reclaim deletes a completed claim past its retention and claims its key
// for req.
func (s *Store) reclaim(ctx context.Context, req idemgate.ClaimRequest) (idemgate.Claim, error) {
	var c idemgate.Claim
	err := s.db.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM idempotency_claims c WHERE tenant_id = $1 AND operation = $2 AND idem_key = $3
AND expires_at <= now() AND EXISTS (SELECT 1 FROM outbox o WHERE o.operation_id = c.operation_id)`, req.Tenant, req.Operation, req.Key); err != nil {
			return fmt.Errorf("delete expired claim: %w", err)
		}
		var expired bool
		var resp storedResponse
		if err := tx.QueryRow(ctx, claimSQL, req.Tenant, req.Operation, req.Key, uuid.NewString(), req.Fingerprint,
			req.Target, []byte(req.Request), s.lease.Microseconds(), req.Retention.Microseconds(), req.TraceParent, s.region).Scan(
			&c.Inserted, &c.OperationID, &c.Fingerprint, &c.AcceptedAt, &expired, &resp.status, &resp.ctype, &resp.loc, &resp.body,
			&c.OutcomeUnknown); err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		c.Response = resp.response()
		return nil
	})
	return c, err
}

// storedResponse scans the outbox columns of a LEFT JOIN: all NULL while
// the command is pending.
type storedResponse struct {
	status     *int32
	ctype, loc *string
	body       []byte
}

func (r storedResponse) response() *idemgate.Response {
	if r.status == nil {
		return nil
	}
	return &idemgate.Response{Status: int(*r.status), ContentType: deref(r.ctype), Location: deref(r.loc), Body: r.body}
}

// CommandView is a command as GET /v1/operations/{id} shows it.
type CommandView struct {
	OperationID string
	Operation   string
	State       idemgate.ClaimState // derived: see claimState
	Response    *idemgate.Response  // nil until completed
	// Calls is the recovery point of a command applied by an upstream
	// call; nil when no call was attempted.
	Calls *CallAttempts
	// AcceptedRegion is the region whose API claimed the key,
	// EmittedRegion the one whose emitter or sweeper last sent its event
	// (another one once a region adopted it); "" on claims older than
	// migration 0013 or made without a region.
	AcceptedRegion, EmittedRegion string
}

// CallAttempts is how far a command applied by a call has got.
type CallAttempts struct {
	Attempts       int
	FirstAttemptAt time.Time
	LastAttemptAt  time.Time
	LastError      string
	// Failures are the observed failures, Unfinished the attempts that
	// never recorded an outcome (their process died).
	Failures, Unfinished int
	// OutcomeUnknownAt is when the command was quarantined as outcome
	// unknown; nil when it is not.
	OutcomeUnknownAt *time.Time
}

// callColumns are the columns of a LEFT JOIN of call_attempts a, read by
// callScan.
const callColumns = `a.attempts, a.first_attempt_at, a.last_attempt_at, a.last_error, a.failures, a.unfinished, a.outcome_unknown_at`

// callScan scans callColumns: all NULL when no call was attempted.
type callScan struct {
	attempts, failures, unfinished *int32
	first, last, unknownAt         *time.Time
	lastErr                        *string
}

func (c *callScan) dest() []any {
	return []any{&c.attempts, &c.first, &c.last, &c.lastErr, &c.failures, &c.unfinished, &c.unknownAt}
}

func (c *callScan) view() *CallAttempts {
	if c.attempts == nil {
		return nil
	}
	return &CallAttempts{Attempts: int(*c.attempts), FirstAttemptAt: *c.first, LastAttemptAt: *c.last, LastError: deref(c.lastErr),
		Failures: int(*c.failures), Unfinished: int(*c.unfinished), OutcomeUnknownAt: c.unknownAt}
}

// Command reads one of tenant's commands by its operation id; found is
// false for an unknown id or another tenant's command.
func (s *Store) Command(ctx context.Context, tenant, operationID string) (v CommandView, found bool, err error) {
	// A snapshot read: it neither fails nor makes the projector's
	// transactions fail, as a SERIALIZABLE read of the outbox would.
	err = s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		v, found = CommandView{}, false
		var pending bool
		var resp storedResponse
		var calls callScan
		err := tx.QueryRow(ctx, `
SELECT c.operation_id::TEXT, c.operation, `+eventPending+`, o.status, o.content_type, o.location, o.body,
       COALESCE(c.accepted_region, ''), COALESCE(c.emitted_region, ''), `+callColumns+claimsJoined+`
WHERE c.operation_id = $1 AND c.tenant_id = $2`, operationID, tenant).Scan(append([]any{&v.OperationID, &v.Operation, &pending,
			&resp.status, &resp.ctype, &resp.loc, &resp.body, &v.AcceptedRegion, &v.EmittedRegion}, calls.dest()...)...)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read command: %w", err)
		}
		v.Response = resp.response()
		v.Calls = calls.view()
		v.State = claimState(v.Response, v.Calls, pending)
		found = true
		return nil
	})
	return v, found, err
}

// Completed returns which of the operations are completed.
func (s *Store) Completed(ctx context.Context, operationIDs []string) (ids []string, err error) {
	err = s.db.InSnapshot(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT operation_id::TEXT FROM outbox WHERE operation_id = ANY($1::UUID[])`, planned, operationIDs)
		if err != nil {
			return fmt.Errorf("read completed: %w", err)
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return ids, err
}

// MarkPublished records that Kafka acknowledged the commands' events, so
// the sweeper leaves them alone: it deletes their command_pending rows.
// With adoption (WithAdoption) it keeps them instead, marked with the
// store's region and a new lease, until the commands complete. It never
// touches the claim row or the outbox, which the projector writes, so the
// two cannot conflict.
func (s *Store) MarkPublished(ctx context.Context, operationIDs []string) error {
	return s.db.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		if s.adopt {
			_, err = tx.Exec(ctx, `UPDATE command_pending SET acked_region = $2, lease_until = now() + ($3::INT8 * INTERVAL '1 microsecond')
WHERE operation_id = ANY($1::UUID[])`, planned, operationIDs, s.region, s.lease.Microseconds())
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM command_pending WHERE operation_id = ANY($1::UUID[])`, planned, operationIDs)
		}
		if err != nil {
			return fmt.Errorf("mark published: %w", err)
		}
		return nil
	})
}

// Accepted counts the commands whose event Kafka has not acknowledged
// (state accepted) and tells when the oldest was accepted. It reads the
// pending rows, which only commands in flight have, so its cost does not
// grow with the claims kept for their retention.
func (s *Store) Accepted(ctx context.Context) (n int, oldest time.Time, err error) {
	var at *time.Time
	if err := s.db.InReadCommitted(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*), min(c.created_at) FROM command_pending p
JOIN idempotency_claims c ON c.operation_id = p.operation_id WHERE p.acked_region IS NULL`).Scan(&n, &at)
	}); err != nil {
		return 0, time.Time{}, fmt.Errorf("count accepted commands: %w", err)
	}
	if at != nil {
		oldest = *at
	}
	return n, oldest, nil
}

// ExpiredLeases takes up to limit pending rows whose lease has passed,
// extends their lease, and returns the commands to emit again, in one
// transaction, so that concurrent sweepers never take the same command
// at once. It emits again a command Kafka never acknowledged, and one
// another region's Kafka acknowledged but nobody completed within the
// lease (adoption: that region may be lost); not one this region's Kafka
// acknowledged, whose event is already on the log its projector reads. A
// pending row whose command completed (or whose acknowledgement was
// lost, not its event) or whose claim is gone is deleted instead. taken
// counts the rows it looked at: a sweep goes on while it is limit.
func (s *Store) ExpiredLeases(ctx context.Context, limit int) (cmds []idemgate.Command, taken int, err error) {
	err = s.db.InTx(ctx, func(tx pgx.Tx) error {
		cmds, taken = cmds[:0], 0
		rows, err := tx.Query(ctx, `
UPDATE command_pending SET lease_until = now() + ($1::INT8 * INTERVAL '1 microsecond')
WHERE operation_id IN (SELECT operation_id FROM command_pending WHERE lease_until < now() ORDER BY lease_until LIMIT $2)
  AND lease_until < now()
RETURNING operation_id::TEXT, COALESCE(acked_region, '') <> '' AND acked_region = $3`, s.lease.Microseconds(), limit, s.region)
		if err != nil {
			return fmt.Errorf("take expired leases: %w", err)
		}
		var due, emit []string
		var id string
		var ours bool
		if _, err := pgx.ForEachRow(rows, []any{&id, &ours}, func() error {
			due = append(due, id)
			if !ours {
				emit = append(emit, id)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("take expired leases: %w", err)
		}
		taken = len(due)
		if len(due) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `
DELETE FROM command_pending p WHERE p.operation_id = ANY($1::UUID[])
  AND (EXISTS (SELECT 1 FROM outbox o WHERE o.operation_id = p.operation_id)
       OR NOT EXISTS (SELECT 1 FROM idempotency_claims c WHERE c.operation_id = p.operation_id))`, planned, due); err != nil {
			return fmt.Errorf("forget settled pending commands: %w", err)
		}
		if len(emit) == 0 {
			return nil
		}
		// Count the re-emission (the column keeps its first name), and
		// record which region emits it now: another region's sweeper
		// adopting a lost region's claim shows there.
		rows, err = tx.Query(ctx, `
UPDATE idempotency_claims c SET emit_attempts = emit_attempts + 1, emitted_region = COALESCE(NULLIF($2::TEXT, ''), emitted_region)
WHERE c.operation_id = ANY($1::UUID[]) AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.operation_id = c.operation_id)
RETURNING operation_id::TEXT, tenant_id, operation, idem_key, target, request, created_at, traceparent`, planned, emit, s.region)
		if err != nil {
			return fmt.Errorf("take expired leases: %w", err)
		}
		var c idemgate.Command
		var req []byte
		if _, err := pgx.ForEachRow(rows, []any{&c.OperationID, &c.Tenant, &c.Operation, &c.IdempotencyKey, &c.Target, &req, &c.AcceptedAt,
			&c.TraceParent}, func() error {
			c.Request = append([]byte(nil), req...)
			cmds = append(cmds, c)
			return nil
		}); err != nil {
			return fmt.Errorf("scan expired lease: %w", err)
		}
		// The console's timeline shows each re-emission (rare: a lease
		// passed), and which region made it.
		if len(cmds) == 0 {
			return nil
		}
		again := make([]string, len(cmds))
		for i, c := range cmds {
			again[i] = c.OperationID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO command_history (operation_id, kind, region)
SELECT id, $2, NULLIF($3::TEXT, '') FROM unnest($1::UUID[]) AS id ON CONFLICT DO NOTHING`, planned, again, string(HistoryReemitted), s.region); err != nil {
			return fmt.Errorf("write history: %w", err)
		}
		return nil
	})
	return cmds, taken, err
}

// DeleteExpired deletes up to limit completed claims past their retention,
// with their sent outbox rows, and returns how many claims it deleted.
// The janitor calls it in a loop; CockroachDB's row-level TTL does the
// same job there (migration 0002_ttl.crdb.sql).
func (s *Store) DeleteExpired(ctx context.Context, limit int) (int, error) {
	var n int
	err := s.db.InTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
DELETE FROM idempotency_claims
WHERE (tenant_id, operation, idem_key) IN (
    SELECT c.tenant_id, c.operation, c.idem_key FROM idempotency_claims c
    WHERE c.expires_at <= now() AND EXISTS (SELECT 1 FROM outbox o WHERE o.operation_id = c.operation_id)
    ORDER BY c.expires_at LIMIT $1)
RETURNING operation_id::TEXT`, limit)
		if err != nil {
			return fmt.Errorf("delete expired claims: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("delete expired claims: %w", err)
		}
		n = len(ids)
		if n == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE operation_id = ANY($1::UUID[]) AND sent_at IS NOT NULL`, planned, ids); err != nil {
			return fmt.Errorf("delete expired outbox rows: %w", err)
		}
		for _, stmt := range []string{
			`DELETE FROM command_pending WHERE operation_id = ANY($1::UUID[])`,
			`DELETE FROM call_attempts WHERE operation_id = ANY($1::UUID[])`,
			`DELETE FROM command_history WHERE operation_id = ANY($1::UUID[])`,
		} {
			if _, err := tx.Exec(ctx, stmt, planned, ids); err != nil {
				return fmt.Errorf("delete expired keys: %w", err)
			}
		}
		return nil
	})
	return n, err
}

// DeleteOldDedupRecords deletes up to limit dedup records older than
// window whose claim is gone (with its key's retention), and returns how
// many it deleted. A redelivered event is then still a no-op: ApplyOnce
// applies only a command whose claim exists, and a claim that exists
// keeps its dedup record. The window covers the commands topic's
// retention, so that a consumer group reset to the start of the topic
// finds every record it could still redeliver.
func (s *Store) DeleteOldDedupRecords(ctx context.Context, window time.Duration, limit int) (int, error) {
	var n int
	err := s.db.InTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
DELETE FROM processed_events
WHERE (projector, event_id) IN (
    SELECT p.projector, p.event_id FROM processed_events p
    WHERE p.processed_at < now() - ($1::INT8 * INTERVAL '1 microsecond')
      AND NOT EXISTS (SELECT 1 FROM idempotency_claims c WHERE c.operation_id::TEXT = p.event_id)
    ORDER BY p.processed_at LIMIT $2)`, window.Microseconds(), limit)
		if err != nil {
			return fmt.Errorf("delete old dedup records: %w", err)
		}
		n = int(tag.RowsAffected())
		return nil
	})
	return n, err
}
