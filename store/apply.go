package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
)

// Effect is the part of a command's application that happens inside the
// store's transaction: it writes its own tables through tx and returns
// the response to record. It may run more than once (the transaction is
// retried) and must have no effect outside tx.
type Effect func(ctx context.Context, tx pgx.Tx) (idemgate.Response, error)

// ApplyOnce applies a command exactly once in effect, in ONE transaction:
// it records cmd as processed by projector and checks its claim is open
// (a redelivered event finds either done, or its claim gone with the
// key's retention, and does nothing more), runs effect and writes the
// response to the outbox, which completes the claim. fresh is false when
// the command had already been processed; nothing is then returned. A
// fresh application returns the response with the time it was recorded
// (the outbox row's created_at: the result event's time, part of its id).
//
// The hook, when not nil, runs inside the transaction after the writes and
// before the commit (a fault point).
func (s *Store) ApplyOnce(ctx context.Context, projector string, cmd idemgate.Command, effect Effect, hook func()) (a Applied, fresh bool, err error) {
	err = s.db.InTx(ctx, func(tx pgx.Tx) error {
		fresh = false
		if done, err := markProcessed(ctx, tx, projector, cmd.OperationID); err != nil || done {
			return err
		}
		if open, err := completeClaim(ctx, tx, cmd.OperationID); err != nil || !open {
			return err
		}
		resp, err := effect(ctx, tx)
		if err != nil {
			return err
		}
		at, written, err := writeOutbox(ctx, tx, cmd, resp)
		if err != nil {
			return err
		}
		a = Applied{Command: cmd, Response: resp}
		if written {
			a.RecordedAt = at
		}
		if hook != nil {
			hook()
		}
		fresh = true
		return nil
	})
	if errors.Is(err, errNotOpen) {
		return Applied{}, false, nil
	}
	if err != nil || !fresh {
		return Applied{}, false, err
	}
	return a, true, nil
}

// errNotOpen rolls back an application whose claim is completed or gone.
var errNotOpen = errors.New("store: the claim is not open")

// RecordOnce completes a command with resp and no other effect (a
// dead-lettered command's 500, an upstream's answer), unless the command
// was already processed.
func (s *Store) RecordOnce(ctx context.Context, projector string, cmd idemgate.Command, resp idemgate.Response) (fresh bool, err error) {
	_, fresh, err = s.ApplyOnce(ctx, projector, cmd, Record(resp), nil)
	return fresh, err
}

// Record is the effect of a command completed with resp and nothing else.
func Record(resp idemgate.Response) Effect {
	return func(context.Context, pgx.Tx) (idemgate.Response, error) { return resp, nil }
}

// markProcessed records the event; done is true when it was recorded
// before (a redelivery).
func markProcessed(ctx context.Context, tx pgx.Tx, projector, eventID string) (done bool, err error) {
	tag, err := tx.Exec(ctx, `INSERT INTO processed_events (projector, event_id) VALUES ($1, $2)
ON CONFLICT (projector, event_id) DO NOTHING`, projector, eventID)
	if err != nil {
		return false, fmt.Errorf("record event: %w", err)
	}
	return tag.RowsAffected() == 0, nil
}

// openClaims selects, among operationIDs, those whose claim still exists:
// an event redelivered after its key's retention is not applied again.
// It reads the claims and never writes them: the API writes them, and a
// projector that updated them would collide with it. (Nor does it look in
// the outbox: the dedup record answers that, and reading the outbox at
// SERIALIZABLE is what made concurrent batches collide.)
const openClaims = `SELECT c.operation_id::TEXT FROM idempotency_claims c WHERE c.operation_id = ANY($1::UUID[])`

// completeClaim checks the claim is open (the outbox row written next
// completes it); open is false otherwise, and then errNotOpen rolls the
// whole application back.
func completeClaim(ctx context.Context, tx pgx.Tx, operationID string) (open bool, err error) {
	rows, err := tx.Query(ctx, openClaims, planned, []string{operationID})
	if err != nil {
		return false, fmt.Errorf("read claim: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("read claim: %w", err)
	}
	if len(ids) == 0 {
		return false, errNotOpen
	}
	return true, nil
}

// writeOutbox records the response and returns when (written is false
// when a row was there already).
func writeOutbox(ctx context.Context, tx pgx.Tx, cmd idemgate.Command, resp idemgate.Response) (at time.Time, written bool, err error) {
	err = tx.QueryRow(ctx, `INSERT INTO outbox (operation_id, tenant_id, operation, status, content_type, location, body)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (operation_id) DO NOTHING RETURNING created_at`,
		cmd.OperationID, cmd.Tenant, cmd.Operation, resp.Status, resp.ContentType, resp.Location, resp.Body).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("write outbox: %w", err)
	}
	return at, true, nil
}

// BatchEffect applies a run of commands inside ApplyBatch's transaction
// and returns their responses, in order. Like Effect, it may run more
// than once and must have no effect outside tx. It may queue statements
// whose answers it does not read on b instead of running them on tx:
// ApplyBatch sends them with the outbox rows, in one round trip, and
// fails the transaction if one fails. An effect that queues must send
// what it queued (tx.SendBatch) before it runs anything else on tx, so
// that the statements run in its order.
type BatchEffect func(ctx context.Context, tx pgx.Tx, b *pgx.Batch, cmds []idemgate.Command) ([]idemgate.Response, error)

// Applied is a command ApplyBatch applied, with its response and the
// time its outbox row was recorded (zero when the row existed already,
// and was not written by this application).
type Applied struct {
	Command    idemgate.Command
	Response   idemgate.Response
	RecordedAt time.Time
}

// ApplyBatch applies a batch of commands exactly once in effect, in ONE
// transaction with multi-row statements: it finds the claims that still
// exist, records those commands as processed by projector, runs effect on
// the ones not processed before (in their order), and writes their
// responses to the outbox, which completes their claims. It returns what it applied;
// the others had been applied before. cmds must have distinct operation
// ids. The hook, when not nil, runs inside the transaction before the
// commit (a fault point).
func (s *Store) ApplyBatch(ctx context.Context, projector string, cmds []idemgate.Command, effect BatchEffect, hook func()) ([]Applied, error) {
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.OperationID
	}
	var applied []Applied
	err := s.db.InTx(ctx, func(tx pgx.Tx) error {
		applied = applied[:0]
		// Only the claims that still exist get a dedup record (openClaims,
		// in the same statement), so that the event of a command forgotten
		// after its retention leaves none behind.
		rows, err := tx.Query(ctx, `INSERT INTO processed_events (projector, event_id)
SELECT $1, c.operation_id::TEXT FROM idempotency_claims c WHERE c.operation_id = ANY($2::UUID[])
ON CONFLICT (projector, event_id) DO NOTHING RETURNING event_id`, planned, projector, ids)
		if err != nil {
			return fmt.Errorf("record events: %w", err)
		}
		opened, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("record events: %w", err)
		}
		open := make(map[string]bool, len(opened))
		for _, id := range opened {
			open[id] = true
		}
		todo := make([]idemgate.Command, 0, len(opened))
		for _, c := range cmds {
			if open[c.OperationID] {
				todo = append(todo, c)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		b := &pgx.Batch{}
		resps, err := effect(ctx, tx, b, todo)
		if err != nil {
			return err
		}
		if len(resps) != len(todo) {
			return fmt.Errorf("%w: the applier returned %d responses for %d commands", idemgate.ErrPermanent, len(resps), len(todo))
		}
		recorded := make(map[string]time.Time, len(todo))
		queueOutboxRows(b, todo, resps, recorded)
		if err := SendQueued(ctx, tx, b); err != nil {
			return err
		}
		if hook != nil {
			hook()
		}
		for i, c := range todo {
			applied = append(applied, Applied{Command: c, Response: resps[i], RecordedAt: recorded[c.OperationID]})
		}
		return nil
	})
	return applied, err
}

// SendQueued sends the statements queued on b in one round trip, reads
// every answer, and empties b. The first failure is returned: it has
// aborted the transaction.
func SendQueued(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, b)
	var err error
	for _, q := range b.QueuedQueries {
		if q.Fn != nil {
			err = q.Fn(br) // a statement whose answer is read (queueOutboxRows)
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", statementName(q.SQL), err)
			break
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	b.QueuedQueries = b.QueuedQueries[:0]
	return err
}

// statementName names a failed statement in an error by its first words.
func statementName(sql string) string {
	f := strings.Fields(sql)
	return strings.ToLower(strings.Join(f[:min(3, len(f))], " "))
}

// queueOutboxRows queues the responses' outbox rows: one multi-row
// statement, which fills recorded with the time of each row it wrote.
func queueOutboxRows(b *pgx.Batch, cmds []idemgate.Command, resps []idemgate.Response, recorded map[string]time.Time) {
	n := len(cmds)
	ids, tenants, ops := make([]string, n), make([]string, n), make([]string, n)
	statuses := make([]int32, n)
	ctypes, locs := make([]string, n), make([]string, n)
	bodies := make([][]byte, n)
	for i, c := range cmds {
		ids[i], tenants[i], ops[i] = c.OperationID, c.Tenant, c.Operation
		statuses[i], ctypes[i], locs[i], bodies[i] = int32(resps[i].Status), resps[i].ContentType, resps[i].Location, resps[i].Body
	}
	b.Queue(`INSERT INTO outbox (operation_id, tenant_id, operation, status, content_type, location, body)
SELECT * FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::INT4[], $5::TEXT[], $6::TEXT[], $7::BYTEA[])
ON CONFLICT (operation_id) DO NOTHING RETURNING operation_id::TEXT, created_at`, ids, tenants, ops, statuses, ctypes, locs, bodies).
		Query(func(rows pgx.Rows) error {
			var id string
			var at time.Time
			_, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error { recorded[id] = at; return nil })
			return err
		})
}
