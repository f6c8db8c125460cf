package idemgate

import (
	"context"
	"encoding/json"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
)

// Operation is one POST endpoint that idemgate makes safe to retry. Its
// name scopes idempotency keys: the same key on two operations is two
// commands.
type Operation struct {
	// Name identifies the operation ("payments.create"): the scope of its
	// keys, the subject of its events, the label of its metrics.
	Name string
	// Path is the POST route, with {name} path parameters
	// ("/v1/payments/{paymentID}/refunds").
	Path string
	// Target turns the path parameters into the command's target, which
	// is part of the request's identity and travels in its event. A
	// *Problem refuses the request before anything else is read, so it
	// consumes no key. Optional: without it the target is "" for a path
	// without parameters, the value of its one parameter, or the
	// parameters as a sorted URL query.
	Target func(params map[string]string) (string, error)
	// Validate checks the body as the client sent it and returns the
	// request the command event carries. A *Problem (422) refuses the
	// request before the claim, so it consumes no key. Required.
	Validate func(body []byte) (json.RawMessage, error)
	// Apply carries out a command inside the projector's transaction: its
	// effect, the dedup record and the recorded response commit together.
	// Exactly one of Apply and Call is set.
	Apply TxApplier
	// Call carries out a command outside the database (an upstream HTTP
	// call), before the transaction that records its response.
	Call CallApplier
	// Retention is how long the operation's keys are remembered once
	// completed; 0 means the deployment's default. A deployment's
	// per-operation setting overrides it (see the type Retention).
	Retention time.Duration
}

// TxApplier applies one operation's commands inside the projector's
// transaction and returns the response to record.
//
// ApplyTx may run more than once for one command (the transaction is
// retried on serialization failures): it must have no effect outside tx.
// A business failure (a declined payment) is a Response with a 4xx
// status, not an error. An error wrapping ErrPermanent says no retry can
// succeed; any other error is retried.
type TxApplier interface {
	ApplyTx(ctx context.Context, tx pgx.Tx, cmd Command) (Response, error)
}

// BatchTxApplier is a TxApplier that can also apply a run of its
// operation's commands at once, with multi-row statements, inside the
// projector's transaction for a batch of events. It returns one response
// per command, in order. The same rules hold as for ApplyTx; the
// projector falls back to ApplyTx, one command at a time, when a batch
// fails.
type BatchTxApplier interface {
	TxApplier
	ApplyTxBatch(ctx context.Context, tx pgx.Tx, cmds []Command) ([]Response, error)
}

// QueuedBatchTxApplier is a BatchTxApplier whose run of commands needs no
// answer from the database: QueueTxBatch computes the responses and queues
// its statements on b, which the projector sends in one round trip with
// its own writes for the batch (the outbox rows), inside the same
// transaction and before the commit. An error of a queued statement fails
// that transaction, as one of ApplyTxBatch's would. The same rules hold as
// for ApplyTxBatch.
type QueuedBatchTxApplier interface {
	BatchTxApplier
	QueueTxBatch(ctx context.Context, b *pgx.Batch, cmds []Command) ([]Response, error)
}

// TxApplierFunc adapts a function to TxApplier.
type TxApplierFunc func(ctx context.Context, tx pgx.Tx, cmd Command) (Response, error)

// ApplyTx calls f.
func (f TxApplierFunc) ApplyTx(ctx context.Context, tx pgx.Tx, cmd Command) (Response, error) {
	return f(ctx, tx, cmd)
}

// CallApplier carries out a command in another system, which cannot join
// the projector's transaction. The projector records each attempt before
// it calls, never calls inside an open transaction, and records the
// response in a transaction of its own afterwards.
//
// Call runs at least once per command, and more than once when an attempt
// fails or the projector dies before it records the response: the callee
// must deduplicate on cmd.OperationID (sent as its Idempotency-Key) for
// the effect to happen once.
type CallApplier interface {
	Call(ctx context.Context, cmd Command, attempt int) (Response, error)
}

// RetryableError is a Call attempt that failed in a way a later attempt
// may not (a timeout, a refused connection, a 5xx, a 429): the projector
// tries again after a backoff, at least After when it is set.
type RetryableError struct {
	Err   error
	After time.Duration
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Read is a GET route of a module (its read model). The API
// authenticates the tenant, runs Handle in a read transaction and writes
// the response; a *Problem error is answered as such.
type Read struct {
	// Path is the GET route, with {name} path parameters.
	Path string
	// Handle reads the model. It may run more than once (the transaction
	// is retried) and must not write.
	Handle func(ctx context.Context, tx pgx.Tx, req ReadRequest) (Response, error)
}

// ReadRequest is what a Read handler is given.
type ReadRequest struct {
	Tenant string
	Params map[string]string
}

// Module is a set of operations registered together, with the read
// routes and the tables they need. The reference payments service is one
// Module; a program protects its own commands with another.
type Module struct {
	// Name scopes the module's migrations.
	Name string
	// Origin says where the module comes from ("routes file
	// /etc/idemgate/routes.yaml"); registry errors name it. Optional.
	Origin     string
	Operations []Operation
	Reads      []Read
	// Migrations holds the module's schema as numbered SQL files at its
	// root ("0001_init.sql"); a file ending in ".crdb.sql" runs on
	// CockroachDB only. The SQL must be portable otherwise. May be nil.
	Migrations fs.FS
	// OpenAPI is a fragment of an OpenAPI 3.1 document ({"paths": ...,
	// "components": ...}) describing the module's routes; the API serves
	// it merged into its own document. Its "x-idemgate-recorded-bodies",
	// a list of schemas, names the bodies the operations record, which
	// GET /v1/operations/{id} shows (without it, any JSON value). May be
	// nil.
	OpenAPI []byte
}
