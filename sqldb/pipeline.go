package sqldb

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// InPipeline runs the statements that build queues as ONE serializable
// transaction sent in ONE round trip: BEGIN, the statements and COMMIT go
// out together and their results come back together. read gets the
// statements' results in order (BEGIN's and COMMIT's are handled here).
// The whole transaction, commit included, is retried on a serialization
// failure or a deadlock, so build and read may run several times and
// must have no effect outside the database.
//
// Only straight-line transactions fit: no statement may depend on a
// result read in Go, and since COMMIT is on its way with the statements,
// an error read returns for reasons of its own does not undo them (an
// error of the server's does: it skips the rest, COMMIT included). It
// costs one round trip where InTx costs one per statement plus two.
func (db *DB) InPipeline(ctx context.Context, build func(b *pgx.Batch), read func(br pgx.BatchResults) error) error {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	return db.retried(ctx, func(ctx context.Context) error { return db.pipelineOnce(ctx, build, read) })
}

func (db *DB) pipelineOnce(ctx context.Context, build func(b *pgx.Batch), read func(br pgx.BatchResults) error) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("sqldb: acquire: %w", err)
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL SERIALIZABLE")
	build(b)
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	if _, err = br.Exec(); err != nil {
		err = fmt.Errorf("sqldb: begin: %w", err)
	} else if err = read(br); err == nil {
		var tag pgconn.CommandTag
		if tag, err = br.Exec(); err != nil {
			err = fmt.Errorf("sqldb: commit: %w", err)
		} else if tag.String() != "COMMIT" {
			// COMMIT of an aborted transaction rolls it back, no error.
			err = fmt.Errorf("sqldb: commit: the transaction was rolled back (%s)", tag)
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("sqldb: pipeline: %w", cerr)
	}
	if err != nil && !conn.Conn().IsClosed() {
		// A failed statement leaves the transaction aborted (the rest of
		// the pipeline, COMMIT included, was skipped): end it before the
		// connection goes back to the pool.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	return err
}
