// Package consumer runs a franz-go consumer group and hands each record to
// a handler, committing a record's offset only after the handler has
// returned nil for it (that is, after its SQL transaction committed).
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler processes one record. A nil return means its effect is
// committed; ErrSkip-wrapped errors mean the record can never be processed
// and is passed over (after being logged); any other error is transient
// and the record is retried, with backoff, without moving past it.
type Handler func(ctx context.Context, rec *kgo.Record) error

// ErrSkip marks a record that no retry can process.
var ErrSkip = errors.New("consumer: record cannot be processed")

// Config configures a Runner.
type Config struct {
	// ClientOptions connect to the brokers (events.ClientOptions).
	ClientOptions []kgo.Opt
	// Group is the consumer group; processes sharing it share partitions.
	Group  string
	Topics []string
	Logger *slog.Logger
	// IsPermanent reports whether an error can never succeed on retry;
	// such records are skipped. Default: errors.Is(err, ErrSkip).
	IsPermanent func(error) bool
}

// Runner consumes the topics for one group.
type Runner struct {
	client  *kgo.Client
	handler Handler
	cfg     Config
}

// New connects the group's client.
func New(cfg Config, handler Handler) (*Runner, error) {
	if cfg.Group == "" || len(cfg.Topics) == 0 {
		return nil, errors.New("consumer: a group and at least one topic are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IsPermanent == nil {
		cfg.IsPermanent = func(err error) bool { return errors.Is(err, ErrSkip) }
	}
	opts := append([]kgo.Opt{}, cfg.ClientOptions...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return &Runner{client: client, handler: handler, cfg: cfg}, nil
}

// Run polls and processes until ctx ends, then commits what was
// processed and leaves the group.
func (r *Runner) Run(ctx context.Context) error {
	defer r.client.Close()
	for {
		fetches := r.client.PollFetches(ctx)
		if ctx.Err() != nil {
			r.client.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			r.cfg.Logger.Warn("fetch", "topic", topic, "partition", partition, "err", err)
		})
		done := r.process(ctx, fetches)
		if len(done) > 0 {
			// The handlers' transactions have committed; now the offsets.
			if err := r.client.CommitRecords(context.WithoutCancel(ctx), done...); err != nil {
				r.cfg.Logger.Warn("commit offsets; the records will be redelivered and deduplicated", "err", err)
			}
		}
		r.client.AllowRebalance()
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
					return // cancelled: the rest of the partition is redelivered
				}
				mu.Lock()
				done = append(done, rec)
				mu.Unlock()
			}
		}()
	})
	wg.Wait()
	return done
}

// handle retries rec until it succeeds, is permanently failed, or ctx
// ends; it reports whether rec may be committed.
func (r *Runner) handle(ctx context.Context, rec *kgo.Record) bool {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := r.handler(ctx, rec)
		if err == nil {
			return true
		}
		if r.cfg.IsPermanent(err) {
			r.cfg.Logger.Error("skipping a record that cannot be processed", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
			return true
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
