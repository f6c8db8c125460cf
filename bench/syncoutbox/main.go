// Command syncoutbox is the benchmark's baseline SO: what a team that wants
// events builds instead of idemgate (the transactional-outbox shape of the
// Watermill SQL forwarder or pgx-outbox). Each new request runs ONE
// SERIALIZABLE transaction that claims its key (bench/syncclaim's claim
// table), writes the effect (a payments row shaped as idemgate's payments
// read model) and writes an outbox row, then answers 201; a retry replays
// the stored answer (200, Idempotent-Replayed: true). A relay goroutine
// polls the outbox every 50 ms for up to 500 unsent rows (again at once
// while batches come back full), produces them to Kafka with franz-go
// (acks=all, idempotent) and marks them sent, so that sent_at is when
// their event was on Kafka (bench/loadgen -schema syncoutbox reads it).
//
// Usage: DATABASE_URL=... syncoutbox -addr 127.0.0.1:8082 -brokers 127.0.0.1:9092 -keys key=tenant
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/bench/internal/syncapi"
)

// schema is SO's effect and outbox. so_payments has the columns and
// indexes of idemgate's payments table; so_outbox's partial index is what
// the relay's poll reads.
const schema = `
CREATE TABLE IF NOT EXISTS so_payments (
    payment_id UUID NOT NULL PRIMARY KEY, tenant_id TEXT NOT NULL, operation_id UUID NOT NULL,
    amount BIGINT NOT NULL, currency TEXT NOT NULL, customer TEXT NOT NULL, description TEXT,
    status TEXT NOT NULL, refunded_amount BIGINT NOT NULL DEFAULT 0, created_at TIMESTAMPTZ NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS so_payments_operation_id ON so_payments (operation_id);
CREATE TABLE IF NOT EXISTS so_outbox (
    id BIGSERIAL PRIMARY KEY, operation_id UUID NOT NULL, event_key TEXT NOT NULL, payload BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(), sent_at TIMESTAMPTZ);
CREATE INDEX IF NOT EXISTS so_outbox_operation ON so_outbox (operation_id);
CREATE INDEX IF NOT EXISTS so_outbox_unsent ON so_outbox (id) WHERE sent_at IS NULL;`

const (
	pollEvery = 50 * time.Millisecond
	batchSize = 500
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	keys := flag.String("keys", "bench-key=tenant-bench", "API keys: key=tenant,...")
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	topic := flag.String("topic", "so.payments", "topic of the events")
	flag.Parse()
	ctx, done, pool, tenants, err := syncapi.Setup(*keys, schema)
	if err != nil {
		fail(err)
	}
	defer done()
	kc, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent: franz-go's default with acks=all
		kgo.DefaultProduceTopic(*topic))
	if err != nil {
		fail(err)
	}
	defer kc.Close()
	if err := createTopic(ctx, kc, *topic); err != nil {
		fail(err)
	}
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); relay(ctx, pool, kc) }()
	if err := syncapi.Serve(ctx, *addr, syncapi.Handler(pool, tenants, effect)); err != nil {
		fail(err)
	}
	<-relayDone
}

// effect writes the payment and its event's outbox row in the claim's
// transaction.
func effect(ctx context.Context, tx pgx.Tx, c syncapi.Claim) error {
	var req struct {
		Amount      int64   `json:"amount"`
		Currency    string  `json:"currency"`
		Customer    string  `json:"customer"`
		Description *string `json:"description"`
	}
	if err := json.Unmarshal(c.Body, &req); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO so_payments (payment_id, tenant_id, operation_id, amount, currency, customer,
    description, status, created_at) VALUES ($1, $2, $1, $3, $4, $5, $6, 'succeeded', now())`,
		c.ID, c.Tenant, req.Amount, req.Currency, req.Customer, req.Description); err != nil {
		return err
	}
	event, err := json.Marshal(map[string]any{"type": "payment.created", "operation_id": c.ID, "tenant": c.Tenant,
		"idempotency_key": c.Key, "payment": json.RawMessage(c.Response)})
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO so_outbox (operation_id, event_key, payload) VALUES ($1, $2, $3)`,
		c.ID, c.Tenant+"/"+c.Key, event)
	return err
}

// relay publishes the outbox until ctx ends: every pollEvery, batches of
// up to batchSize unsent rows in id order, until a batch is not full.
func relay(ctx context.Context, pool *pgxpool.Pool, kc *kgo.Client) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		for {
			n, err := relayOnce(ctx, pool, kc)
			if err != nil {
				if ctx.Err() == nil {
					slog.Warn("relay", "err", err)
				}
				break
			}
			if n < batchSize {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// relayOnce reads one batch at READ COMMITTED (its own statements never
// join the handlers' serializable conflicts), produces it, waits for every
// acknowledgement, then marks the rows sent: at least once.
func relayOnce(ctx context.Context, pool *pgxpool.Pool, kc *kgo.Client) (int, error) {
	readCommitted := pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	var ids []int64
	var recs []*kgo.Record
	err := pgx.BeginTxFunc(ctx, pool, readCommitted, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, event_key, payload FROM so_outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1`, batchSize)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var key string
			var payload []byte
			if err := rows.Scan(&id, &key, &payload); err != nil {
				return err
			}
			ids = append(ids, id)
			recs = append(recs, &kgo.Record{Key: []byte(key), Value: payload})
		}
		return rows.Err()
	})
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	if err := kc.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("produce: %w", err)
	}
	err = pgx.BeginTxFunc(ctx, pool, readCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE so_outbox SET sent_at = now() WHERE id = ANY($1)`, ids)
		return err
	})
	return len(recs), err
}

// createTopic creates the events' topic with the broker's default
// partitions and replication; one that exists is kept.
func createTopic(ctx context.Context, kc *kgo.Client, topic string) error {
	resp, err := kadm.NewClient(kc).CreateTopic(ctx, -1, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "syncoutbox:", err)
	os.Exit(1)
}
