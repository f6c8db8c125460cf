// Package consumer runs a franz-go consumer group with one worker per
// assigned partition. A worker hands each record to a handler, in order,
// and commits a record's offset only after the handler has returned nil
// for it (that is, after its SQL transaction committed). A slow partition
// (a database retry, an upstream in backoff) holds back only itself: the
// others go on and commit, and a rebalance takes the partition away from
// it instead of waiting for it to succeed.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/internal/retry"
	"github.com/idemgate/idemgate/logging"
)

// Handler processes one record. A nil return means its effect is
// committed. Otherwise the record is retried, with backoff, without moving
// past it: for ever while the error is transient, and MaxAttempts times
// when it is permanent, after which OnPoison disposes of it.
//
// ctx ends when the partition is revoked or the runner stops. The handler
// should then finish the attempt in hand (a transaction is never cut
// short) but start no new work: the partition's next owner redoes what
// was not committed.
type Handler func(ctx context.Context, rec *kgo.Record) error

// Config configures a Runner.
type Config struct {
	// ClientOptions connect to the brokers (events.KafkaConfig.ClientOptions).
	ClientOptions []kgo.Opt
	// Group is the consumer group; processes sharing it share partitions.
	Group  string
	Topics []string
	Logger *slog.Logger
	// IsPermanent reports whether an error will recur on every retry.
	// Default: no error is permanent.
	IsPermanent func(error) bool
	// MaxAttempts bounds the attempts at a record failing permanently
	// (default DefaultMaxAttempts).
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
	// MaxPollRecords bounds the records one poll takes (default DefaultMaxPollRecords).
	MaxPollRecords int
	// QueueLimit is how many fetched records may wait for one partition's
	// worker before fetching that partition pauses (default
	// DefaultQueueLimit).
	QueueLimit int
	// LagInterval is how often the group's lag is measured (default
	// DefaultLagInterval).
	LagInterval time.Duration
	// BatchHandler, when set, is handed runs of up to BatchSize records of
	// one partition at once (in order); nil means they are all committed.
	// On an error the runner handles those records one at a time with
	// Handler, with its retries and poison handling. Optional.
	BatchHandler func(ctx context.Context, recs []*kgo.Record) error
	// BatchSize bounds a run given to BatchHandler (default
	// DefaultBatchSize).
	BatchSize int
}

// The defaults of Config; config.Defaults uses the same constants.
const (
	// DefaultMaxAttempts is how many times a record failing with a
	// permanent error is tried before OnPoison disposes of it: enough to
	// tell a failure that repeats from one that a moment mends, few enough
	// that a poison record holds its partition back for seconds only.
	DefaultMaxAttempts = 5
	// DefaultMaxPollRecords bounds one poll: five batches, so a busy
	// group fills whole batches, while the records a poll holds in memory
	// stay bounded.
	DefaultMaxPollRecords = 1000
	// DefaultQueueLimit is how many fetched records may wait for one
	// partition's worker before its fetching pauses: ten batches, so the
	// worker never waits on a fetch while memory stays bounded.
	DefaultQueueLimit = 2000
	// DefaultLagInterval is how often the group's lag is measured: often
	// enough for a dashboard (Prometheus scrapes every 15 s or so), rare
	// enough to cost the brokers nothing.
	DefaultLagInterval = 5 * time.Second
	// DefaultBatchSize bounds a run given to BatchHandler: one transaction
	// of that many commands amortises its commit, and a failed batch that
	// falls back to one record at a time redoes at most that many.
	DefaultBatchSize = 200
)

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.IsPermanent == nil {
		c.IsPermanent = func(error) bool { return false }
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.LagInterval <= 0 {
		c.LagInterval = DefaultLagInterval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
}

// Validate reports a configuration the runner cannot work with.
func (c Config) Validate() error {
	if c.Group == "" || len(c.Topics) == 0 {
		return errors.New("consumer: a group and at least one topic are required")
	}
	if c.OnPoison == nil {
		return errors.New("consumer: OnPoison is required")
	}
	return nil
}

// The group's timing. A record's attempt (a transaction, an upstream call)
// must end well within the rebalance timeout, since a revoked worker
// finishes its attempt before the rebalance goes on.
const (
	sessionTimeout   = 10 * time.Second
	rebalanceTimeout = 60 * time.Second
	// revokeWait bounds how long a revocation waits for a worker's attempt
	// in hand; past it the worker is abandoned (its commit will fail, and
	// the next owner redoes the record).
	revokeWait = 45 * time.Second
	// commitTimeout bounds an offset commit: an unreachable broker must
	// not hold a revocation or a shutdown.
	commitTimeout = 10 * time.Second
)

type partition struct {
	topic string
	id    int32
}

// Runner consumes the topics for one group.
type Runner struct {
	client  *kgo.Client
	handler Handler
	cfg     Config
	lag     *prometheus.GaugeVec
	log     *logging.Throttle

	mu      sync.Mutex
	workers map[partition]*worker
}

// New connects the group's client.
func New(cfg Config, handler Handler) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &Runner{handler: handler, cfg: cfg, workers: map[partition]*worker{}, log: logging.NewThrottle(cfg.Logger, 10*time.Second),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "idemgate_consumer_lag_records",
			Help: "Records of the partition not yet processed by the group: log-end offset minus the group's committed offset.",
		}, []string{"group", "topic", "partition"})}
	opts := append([]kgo.Opt{}, cfg.ClientOptions...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		// Only records a worker has finished are marked, and only marked
		// offsets are committed: every 200 ms in the background (no
		// commit round trip in a worker's way), and at once, synchronously,
		// when partitions are revoked or the runner stops.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(200*time.Millisecond),
		// Between a poll and AllowRebalance the records are handed to the
		// workers, never processed: the block lasts microseconds.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(r.assigned),
		kgo.OnPartitionsRevoked(r.revoked),
		kgo.OnPartitionsLost(r.revoked),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		// A projector killed with -9 holds its partitions until its
		// session times out: keep that short (franz-go's default is 45 s)
		// so a restarted or surviving projector takes them over quickly.
		kgo.SessionTimeout(sessionTimeout),
		kgo.HeartbeatInterval(time.Second),
		kgo.RebalanceTimeout(rebalanceTimeout),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	r.client = client
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(r.lag); err != nil {
			client.Close()
			return nil, fmt.Errorf("consumer: %w", err)
		}
	}
	return r, nil
}

// Run polls until ctx ends. On shutdown every worker finishes the attempt
// in hand and commits what it completed, then the client leaves the
// group.
func (r *Runner) Run(ctx context.Context) error {
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); r.measureLag(lagCtx) }()
	defer func() {
		stopLag()
		<-lagDone
		r.stopAll()
		r.commitMarked()
		// Leave the group so that the partitions move at once, but never
		// wait long for an unreachable broker.
		lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.client.LeaveGroupContext(lctx)
		cancel()
		r.client.Close()
	}()
	for {
		fetches := r.client.PollRecords(ctx, r.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			r.client.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.log.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			r.mu.Lock()
			w := r.workers[partition{p.Topic, p.Partition}]
			r.mu.Unlock()
			if w == nil {
				return // revoked meanwhile: the next owner fetches them again
			}
			if w.push(p.Records) >= r.cfg.QueueLimit {
				r.client.PauseFetchPartitions(map[string][]int32{p.Topic: {p.Partition}})
			}
		})
		r.client.AllowRebalance()
	}
}

// assigned starts a worker per new partition.
func (r *Runner) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, ps := range assigned {
		for _, p := range ps {
			tp := partition{topic, p}
			if r.workers[tp] != nil {
				continue
			}
			w := newWorker(r, tp)
			r.workers[tp] = w
			go w.run()
		}
	}
}

// revoked stops the workers of partitions taken away: each stops retrying,
// finishes its attempt in hand and commits what it completed, so that the
// rebalance proceeds within the attempt's bound, whatever the state of
// the database or an upstream.
func (r *Runner) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	var ws []*worker
	r.mu.Lock()
	for topic, ps := range revoked {
		for _, p := range ps {
			tp := partition{topic, p}
			if w := r.workers[tp]; w != nil {
				ws = append(ws, w)
				delete(r.workers, tp)
			}
		}
	}
	r.mu.Unlock()
	r.stop(ws)
	r.commitMarked() // before the partitions move: what was done stays done
	r.client.ResumeFetchPartitions(revoked)
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	ws := make([]*worker, 0, len(r.workers))
	for tp, w := range r.workers {
		ws = append(ws, w)
		delete(r.workers, tp)
	}
	r.mu.Unlock()
	r.stop(ws)
}

func (r *Runner) stop(ws []*worker) {
	for _, w := range ws {
		w.cancel()
	}
	deadline := time.After(revokeWait)
	for _, w := range ws {
		select {
		case <-w.done:
		case <-deadline:
			r.cfg.Logger.Warn("a partition's worker did not finish its record in time; the next owner redoes it",
				"topic", w.tp.topic, "partition", w.tp.id)
			return
		}
	}
}

// handle processes rec until it succeeds or is disposed of as poison; it
// returns false when ctx (revocation, shutdown) ends first.
func (r *Runner) handle(ctx context.Context, rec *kgo.Record) bool {
	backoff := retry.Policy{Base: 50 * time.Millisecond, Max: 5 * time.Second}.New() // no jitter: one record's retries
	permanent := 0
	for attempt := 1; ; attempt++ {
		// A worker whose partition was revoked (or that is stopping) starts
		// nothing more: the record stays uncommitted for the next owner, and
		// the rebalance does not wait out another attempt.
		if ctx.Err() != nil {
			return false
		}
		err := r.handler(ctx, rec)
		if err == nil {
			return true
		}
		if r.cfg.IsPermanent(err) {
			permanent++
			if permanent >= r.cfg.MaxAttempts {
				perr := r.cfg.OnPoison(ctx, rec, err)
				if perr == nil {
					return true
				}
				err = fmt.Errorf("dispose of poison record: %w", perr)
			}
		}
		if ctx.Err() != nil {
			return false
		}
		// A record's first failure is always logged, whatever other
		// records failed just before: an operator (and the chaos test)
		// sees each record that is held up. Its later retries are throttled.
		warn := r.log.Warn
		if attempt == 1 {
			warn = r.cfg.Logger.Warn
		}
		warn("record failed; retrying", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff.NextBackOff()):
		}
	}
}

// commit marks rec done: its offset, and those before it, are committed
// with the next commit.
func (r *Runner) commit(rec *kgo.Record) { r.client.MarkCommitRecords(rec) }

// commitMarked commits the marked offsets now, bounded in time.
func (r *Runner) commitMarked() {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	if err := r.client.CommitMarkedOffsets(ctx); err != nil {
		r.log.Warn("commit offsets; the records will be redelivered and deduplicated", "err", err)
	}
}
