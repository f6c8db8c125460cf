package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
)

// commandBatch is n accepted payments as a producer batches them: each
// record's key, headers and value one after the other, the way a Kafka
// record batch lays them out before it is compressed. Ids, keys and
// amounts are random, as a client's UUIDs are: only the structure
// repeats.
func commandBatch(tb testing.TB, n int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	rnd := rand.New(rand.NewPCG(1, 2))
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[rnd.IntN(16)]
		}
		return string(b)
	}
	uuid := func() string { return hex(8) + "-" + hex(4) + "-" + hex(4) + "-" + hex(4) + "-" + hex(12) }
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for range n {
		req := fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"cus_%s","description":"order %s"}`,
			rnd.IntN(1_000_000), hex(14), hex(6))
		cmd := idemgate.Command{OperationID: uuid(), Tenant: "tenant-a", Operation: "payments.create", IdempotencyKey: uuid(),
			Request: json.RawMessage(req), AcceptedAt: at.Add(time.Duration(rnd.IntN(1e9)))}
		env, err := CommandAccepted(cmd)
		if err != nil {
			tb.Fatal(err)
		}
		rec := env.Record("idemgate.commands", IdentityKey(cmd.Tenant, cmd.Operation, cmd.IdempotencyKey))
		buf.Write(rec.Key)
		for _, h := range rec.Headers {
			buf.WriteString(h.Key)
			buf.Write(h.Value)
		}
		buf.Write(rec.Value)
	}
	return buf.Bytes()
}

// BenchmarkCompression measures each codec IDEMGATE_KAFKA_COMPRESSION
// offers on batches of command events: the CPU a batch costs and the
// bytes it saves (ratio = raw/compressed), the figures behind
// DefaultCompression.
func BenchmarkCompression(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		raw := commandBatch(b, n)
		for _, name := range []string{"gzip", "snappy", "lz4", "zstd"} {
			b.Run(fmt.Sprintf("%s/records=%d", name, n), func(b *testing.B) {
				c, err := kgo.DefaultCompressor(compressionCodecs[name])
				if err != nil {
					b.Fatal(err)
				}
				var dst bytes.Buffer
				var out []byte
				b.SetBytes(int64(len(raw)))
				for b.Loop() {
					dst.Reset()
					out, _ = c.Compress(&dst, raw)
				}
				b.ReportMetric(float64(len(raw))/float64(len(out)), "ratio")
				b.ReportMetric(float64(len(raw))/float64(n), "rawB/record")
			})
		}
	}
}

// TestCompressionCodecsRoundTrip checks every codec the setting offers
// compresses a batch that the decompressor gives back whole.
func TestCompressionCodecsRoundTrip(t *testing.T) {
	raw := commandBatch(t, 64)
	d := kgo.DefaultDecompressor()
	for name, codec := range compressionCodecs {
		if name == "none" {
			continue
		}
		c, err := kgo.DefaultCompressor(codec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var dst bytes.Buffer
		out, used := c.Compress(&dst, raw)
		if len(out) >= len(raw) {
			t.Fatalf("%s: %d bytes compressed to %d", name, len(raw), len(out))
		}
		back, err := d.Decompress(out, used)
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("%s: round trip failed: %v", name, err)
		}
	}
}

// batchCodecs records the codec of each batch a producer wrote.
type batchCodecs struct {
	mu      sync.Mutex
	codecs  []uint8
	written chan struct{} // a batch was written (signalled once, not blocking)
}

func (h *batchCodecs) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.codecs = append(h.codecs, m.CompressionType)
	select {
	case h.written <- struct{}{}:
	default:
	}
}

// TestProducerCompression checks the codec IDEMGATE_KAFKA_COMPRESSION
// names is the one the producer's batches carry, and that the default is
// gzip.
func TestProducerCompression(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	// Kafka's codec numbers: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
	for setting, want := range map[string]uint8{"": 1, "none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4} {
		t.Run("codec="+setting, func(t *testing.T) {
			opts, err := (KafkaConfig{Compression: setting}).ClientOptions(brokers)
			if err != nil {
				t.Fatal(err)
			}
			hook := &batchCodecs{written: make(chan struct{}, 1)}
			cl, err := kgo.NewClient(append(opts, kgo.WithHooks(hook))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			recs := make([]*kgo.Record, 16)
			for i := range recs {
				recs[i] = &kgo.Record{Topic: "t", Value: []byte(fmt.Sprintf(`{"operation_id":"op-%d","status":201,"body":{"amount":1000}}`, i))}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			// The hook runs after the batch's response is handled, which
			// may be just after ProduceSync has returned.
			select {
			case <-hook.written:
			case <-ctx.Done():
				t.Fatal("no batch written after the acknowledgement")
			}
			hook.mu.Lock()
			codecs := append([]uint8(nil), hook.codecs...)
			hook.mu.Unlock()
			for _, got := range codecs {
				if got != want {
					t.Fatalf("batch codec %d, want %d", got, want)
				}
			}
		})
	}
}
