package projector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/sqldb"
)

// CommandCompleted is the body of a result event: a command's recorded
// outcome, for event-driven consumers.
type CommandCompleted struct {
	OperationID    string          `json:"operation_id"`
	Tenant         string          `json:"tenant"`
	Operation      string          `json:"operation"`
	IdempotencyKey string          `json:"idempotency_key"`
	Status         int             `json:"status"`
	ContentType    string          `json:"content_type"`
	Location       string          `json:"location,omitempty"`
	Body           json.RawMessage `json:"body"`
}

// Relay publishes outbox rows as result events and marks them sent. It is
// at-least-once: a crash between the publish and the mark publishes the
// row again, with the same event id (the operation id) for consumers to
// deduplicate on.
type Relay struct {
	db       *sqldb.DB
	producer *events.Producer
	topic    string
	batch    int
	interval time.Duration
	faults   *fault.Injector
	logger   *slog.Logger
}

// NewRelay returns a relay publishing to topic.
func NewRelay(db *sqldb.DB, producer *events.Producer, topic string, batch int, interval time.Duration, faults *fault.Injector, logger *slog.Logger) *Relay {
	return &Relay{db: db, producer: producer, topic: topic, batch: batch, interval: interval, faults: faults, logger: logger}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		for {
			n, err := r.RelayOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.logger.Warn("relay", "err", err)
				}
				break
			}
			if n < r.batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RelayOnce publishes up to one batch of unsent rows and returns how many
// it published.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	rows, err := r.db.Pool.Query(ctx, `
SELECT o.operation_id::TEXT, o.tenant_id, o.operation, COALESCE(c.idem_key, ''), o.status, o.content_type, o.location, o.body, o.created_at
FROM outbox o
LEFT JOIN idempotency_claims c ON c.operation_id = o.operation_id
WHERE o.sent_at IS NULL
ORDER BY o.created_at
LIMIT $1`, r.batch)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*kgo.Record, error) {
		var c CommandCompleted
		var body []byte
		var at time.Time
		if err := row.Scan(&c.OperationID, &c.Tenant, &c.Operation, &c.IdempotencyKey, &c.Status, &c.ContentType, &c.Location, &body, &at); err != nil {
			return nil, err
		}
		c.Body = body
		if !json.Valid(body) {
			c.Body, _ = json.Marshal(string(body))
		}
		data, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		env := events.Envelope{ID: c.OperationID, Type: events.TypeCommandCompleted, Source: events.Source,
			Subject: c.Operation, Time: at, ContentType: events.ContentTypeJSON, Data: data}
		return env.Record(r.topic, events.IdentityKey(c.Tenant, c.Operation, c.IdempotencyKey)), nil
	})
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		env, _ := events.Decode(rec) // built just above: always decodes
		ids[i] = env.ID
	}
	if err := r.producer.EmitSync(ctx, recs...); err != nil {
		return 0, err
	}
	r.faults.Hit(fault.AfterRelayPublish)
	if err := r.db.InTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE outbox SET sent_at = now() WHERE operation_id = ANY($1::UUID[]) AND sent_at IS NULL`, ids)
		return err
	}); err != nil {
		return 0, fmt.Errorf("mark outbox sent: %w", err)
	}
	return len(recs), nil
}
