// Package consumer runs a franz-go consumer group and hands each record to
// a handler, committing a record's offset only after the handler has
// returned nil for it (that is, after its SQL transaction committed).
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler processes one record. A nil return means its effect is
// committed. Otherwise the record is retried, with backoff, without moving
// past it: for ever while the error is transient, and MaxAttempts times
// when it is permanent, after which OnPoison disposes of it.
type Handler func(ctx context.Context, rec *kgo.Record) error

// Config configures a Runner.
type Config struct {
	// ClientOptions connect to the brokers (events.ClientOptions).
	ClientOptions []kgo.Opt
	// Group is the consumer group; processes sharing it share partitions.
	Group  string
	Topics []string
	Logger *slog.Logger
	// IsPermanent reports whether an error will recur on every retry.
	// Default: no error is permanent.
	IsPermanent func(error) bool
	// MaxAttempts bounds the attempts at a record failing permanently
	// (default 5).
	MaxAttempts int
	// OnPoison disposes of a record that failed MaxAttempts times (the
	// projector dead-letters it); its offset is committed once OnPoison
	// returns nil, so the partition behind it never stalls. Required.
	OnPoison func(ctx context.Context, rec *kgo.Record, cause error) error
	// Registry receives the consumer-lag gauge; may be nil.
	Registry prometheus.Registerer
	// InstanceID, when set, makes this process a static member of the
	// group (KIP-345): restarted with the same id after a crash, it takes
	// its partitions back at once, with no rebalance of the others. Each
	// process of the group needs its own stable id.
	InstanceID string
}

// Runner consumes the topics for one group.
type Runner struct {
	client  *kgo.Client
	handler Handler
	cfg     Config
	lag     *prometheus.GaugeVec
}

// New connects the group's client.
func New(cfg Config, handler Handler) (*Runner, error) {
	if cfg.Group == "" || len(cfg.Topics) == 0 {
		return nil, errors.New("consumer: a group and at least one topic are required")
	}
	if cfg.OnPoison == nil {
		return nil, errors.New("consumer: OnPoison is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IsPermanent == nil {
		cfg.IsPermanent = func(error) bool { return false }
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	opts := append([]kgo.Opt{}, cfg.ClientOptions...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		// A projector killed with -9 holds its partitions until its
		// session times out: keep that short (franz-go's default is 45 s)
		// so a restarted or surviving projector takes them over quickly.
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.RebalanceTimeout(20*time.Second),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	r := &Runner{client: client, handler: handler, cfg: cfg,
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "idemgate_consumer_lag_records",
			Help: "Records behind the partition's high watermark after the last processed batch.",
		}, []string{"group", "topic", "partition"})}
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(r.lag); err != nil {
			client.Close()
			return nil, fmt.Errorf("consumer: %w", err)
		}
	}
	return r, nil
}

// Run polls and processes until ctx ends. On shutdown the records being
// handled finish (their transactions are not cut short), their offsets
// are committed, and the client leaves the group.
func (r *Runner) Run(ctx context.Context) error {
	defer func() {
		// Leave the group so that the partitions move at once, but never
		// wait long for an unreachable broker.
		lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.client.LeaveGroupContext(lctx)
		cancel()
		r.client.Close()
	}()
	for {
		fetches := r.client.PollFetches(ctx)
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.cfg.Logger.Warn("fetch", "topic", topic, "partition", partition, "err", err)
			}
		})
		done := r.process(ctx, fetches)
		if len(done) > 0 {
			// The handlers' transactions have committed; now the offsets.
			// Bounded: an unreachable broker must not hold a shutdown.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err := r.client.CommitRecords(cctx, done...)
			cancel()
			if err != nil {
				r.cfg.Logger.Warn("commit offsets; the records will be redelivered and deduplicated", "err", err)
			}
		}
		r.client.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// process runs the partitions of a fetch concurrently, each in order, and
// returns the records whose effect is committed.
func (r *Runner) process(ctx context.Context, fetches kgo.Fetches) []*kgo.Record {
	var (
		mu   sync.Mutex
		done []*kgo.Record
		wg   sync.WaitGroup
	)
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, rec := range p.Records {
				if !r.handle(ctx, rec) {
					return // shutting down: the rest is redelivered
				}
				mu.Lock()
				done = append(done, rec)
				mu.Unlock()
				if ctx.Err() != nil {
					return
				}
			}
			last := p.Records[len(p.Records)-1]
			r.lag.WithLabelValues(r.cfg.Group, p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(0, p.HighWatermark-last.Offset-1)))
		}()
	})
	wg.Wait()
	return done
}

// handle processes rec until it succeeds or is disposed of as poison; it
// returns false when shutdown interrupts it first. Each attempt runs to
// its end even when ctx ends meanwhile: shutdown waits for it.
func (r *Runner) handle(ctx context.Context, rec *kgo.Record) bool {
	delay := 50 * time.Millisecond
	permanent := 0
	for attempt := 1; ; attempt++ {
		err := r.attempt(ctx, func(actx context.Context) error { return r.handler(actx, rec) })
		if err == nil {
			return true
		}
		if r.cfg.IsPermanent(err) {
			permanent++
			if permanent >= r.cfg.MaxAttempts {
				perr := r.attempt(ctx, func(actx context.Context) error { return r.cfg.OnPoison(actx, rec, err) })
				if perr == nil {
					return true
				}
				err = fmt.Errorf("dispose of poison record: %w", perr)
			}
		}
		if ctx.Err() != nil {
			return false
		}
		r.cfg.Logger.Warn("record failed; retrying", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// attemptTimeout bounds one attempt, so that a hung database cannot hold
// a partition (or a shutdown) for ever.
const attemptTimeout = 30 * time.Second

// attempt runs fn with a context that shutdown does not cancel: an
// attempt under way finishes rather than being cut short.
func (r *Runner) attempt(ctx context.Context, fn func(context.Context) error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
	defer cancel()
	return fn(actx)
}
