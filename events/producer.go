package events

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// baseOptions are the options every idemgate client of brokers has
// (KafkaConfig.ClientOptions adds the codec, TLS and SASL): acks=all with
// the idempotent producer (franz-go's default, stated here because the
// guarantees rest on it), and a bounded delivery time so that a record
// Kafka cannot take fails back to the caller instead of waiting for ever;
// the sweeper re-emits what failed.
func baseOptions(brokers []string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(30 * time.Second),
		kgo.ProduceRequestTimeout(10 * time.Second),
		kgo.MaxBufferedRecords(100_000),
	}
}

// Producer emits envelopes. It never blocks a caller on a slow or absent
// broker: Emit hands the record over and reports the outcome later.
type Producer struct {
	client *kgo.Client
}

// NewProducer wraps a client built with ClientOptions.
func NewProducer(client *kgo.Client) *Producer { return &Producer{client: client} }

// Emit hands rec to the client without waiting; done runs with the
// broker's verdict (nil once acknowledged by all in-sync replicas). When
// the client's buffer is full, done runs at once with the error.
func (p *Producer) Emit(ctx context.Context, rec *kgo.Record, done func(*kgo.Record, error)) {
	p.client.TryProduce(ctx, rec, done)
}

// EmitSync emits the records and waits for every acknowledgement.
func (p *Producer) EmitSync(ctx context.Context, recs ...*kgo.Record) error {
	if err := p.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("events: produce: %w", err)
	}
	return nil
}

// Ping reports whether a broker answers; /readyz uses it.
func (p *Producer) Ping(ctx context.Context) error { return p.client.Ping(ctx) }
