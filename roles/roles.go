// Package roles runs idemgate's processes: serve (the HTTP API with its
// emitter, sweeper and janitor), project (the projector's consumer
// group), relay (recorded outcomes to the results topic) and dev (all of
// them on a private PostgreSQL and an in-process Kafka). Each takes the
// registry of operations it serves, so a program with its own operations
// runs them like cmd/idemgate runs the payments.
package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
)

// ProjectorName scopes the projectors' dedup records (processed_events).
// It must never change in a deployment: under another name every event
// would look unprocessed.
const ProjectorName = "idemgate"

// Options are what every role is built from.
type Options struct {
	Config   config.Config
	Registry *idemgate.Registry
	// Faults, when not nil, may kill the process at named points (tests).
	Faults *fault.Injector
	Logger *slog.Logger
	// Metrics is the Prometheus registry the roles serve; modules that
	// export metrics (the gateway's upstream calls) register on it too.
	// Default: a new one.
	Metrics *prometheus.Registry
}

func (o Options) validate() error {
	if o.Registry == nil {
		return errors.New("roles: no registry of operations")
	}
	return nil
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

// Migrations lists the schema a registry needs: the core tables, then
// each module's, in registration order.
func Migrations(reg *idemgate.Registry) []sqldb.MigrationSet {
	sets := []sqldb.MigrationSet{store.Migrations()}
	for _, m := range reg.Modules() {
		if m.Migrations != nil {
			sets = append(sets, sqldb.MigrationSet{Module: m.Name, FS: m.Migrations})
		}
	}
	return sets
}

// Migrate applies the registry's schema to the database at url and
// returns the migrations it applied.
func Migrate(ctx context.Context, url string, reg *idemgate.Registry) (applied []string, flavor sqldb.Flavor, err error) {
	if url == "" {
		return nil, "", errors.New("DATABASE_URL is not set")
	}
	db, err := sqldb.Open(ctx, url, 2)
	if err != nil {
		return nil, "", err
	}
	defer db.Close()
	applied, err = db.Migrate(ctx, Migrations(reg)...)
	return applied, db.Flavor, err
}

// Redrive drives a dead-lettered command again; the sweeper of a running
// serve emits it.
func Redrive(ctx context.Context, url, operationID string) error {
	if url == "" {
		return errors.New("DATABASE_URL is not set")
	}
	db, err := sqldb.Open(ctx, url, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	return store.New(db, 0).Redrive(ctx, ProjectorName, operationID)
}

// backends are the connections a role runs on.
type backends struct {
	Options
	db      *sqldb.DB
	store   *store.Store
	kafka   []kgo.Opt
	topics  events.Topics
	metrics *prometheus.Registry
}

// connect opens the database and checks Kafka answers, creating the
// topics if they are missing. Both are retried while unreachable.
func connect(ctx context.Context, o Options) (*backends, func(), error) {
	if err := o.validate(); err != nil {
		return nil, nil, err
	}
	cfg := o.Config
	if cfg.DatabaseURL == "" {
		return nil, nil, errors.New("DATABASE_URL is not set")
	}
	if len(cfg.KafkaBrokers) == 0 {
		return nil, nil, errors.New("KAFKA_BROKERS is not set")
	}
	log := o.logger()
	var db *sqldb.DB
	err := RetryStartup(ctx, log, "database", func() (err error) {
		db, err = sqldb.Open(ctx, cfg.DatabaseURL, 0)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	reg := o.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			db.Close()
			return nil, nil, fmt.Errorf("metrics: %w", err)
		}
	}
	b := &backends{Options: o, db: db, store: store.New(db, cfg.Lease), kafka: events.ClientOptions(cfg.KafkaBrokers),
		topics: events.TopicsWithPrefix(cfg.TopicPrefix), metrics: reg}
	b.Logger = log
	if err := RetryStartup(ctx, log, "kafka", func() error { return ensureTopics(ctx, b) }); err != nil {
		db.Close()
		return nil, nil, err
	}
	return b, db.Close, nil
}

// RetryStartup retries a role's first connection to a backend with
// backoff until it succeeds or ctx ends (SIGTERM): a backend that is
// briefly down during a rollout must not make the process exit and a
// supervisor back off from it. Configuration errors are not retried.
func RetryStartup(ctx context.Context, logger *slog.Logger, what string, connect func() error) error {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := connect()
		if err == nil || errors.Is(err, sqldb.ErrBadURL) || !sqldb.IsTransient(err) && !isKafkaUnreachable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s unreachable: %w", what, err)
		}
		logger.Warn("backend unreachable; retrying", "backend", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s unreachable: %w", what, err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// isKafkaUnreachable reports errors from creating the topics that a
// later attempt may not meet.
func isKafkaUnreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kerr.CoordinatorNotAvailable) ||
		errors.Is(err, kerr.NotController) || errors.Is(err, kerr.RequestTimedOut)
}

func ensureTopics(ctx context.Context, b *backends) error {
	client, err := kgo.NewClient(b.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return events.EnsureTopics(ctx, client, b.topics, b.Config.Partitions)
}

// retention is how long an operation's completed keys are kept: the
// deployment's per-operation setting, else the operation's own, else the
// deployment's default.
func retention(cfg config.Config) func(idemgate.Operation) time.Duration {
	return func(op idemgate.Operation) time.Duration {
		if d, ok := cfg.RetentionByOperation[op.Name]; ok {
			return d
		}
		if op.Retention > 0 {
			return op.Retention
		}
		return cfg.Retention
	}
}
