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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/internal/retry"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/tracing"
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
	// TracerProvider records the spans (see package tracing); default:
	// none recorded, the trace context still passed on.
	TracerProvider trace.TracerProvider
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
// returns the migrations it applied (MigrateConfig with the default
// settings: no optional migration set).
func Migrate(ctx context.Context, url string, reg *idemgate.Registry) (applied []string, flavor sqldb.Flavor, err error) {
	cfg := config.Defaults()
	cfg.DatabaseURL = url
	return MigrateConfig(ctx, cfg, reg)
}

// MigrateConfig applies the registry's schema to cfg's database, then the
// optional migration set cfg.Migrations selects (OptionalMigrations), and
// returns the migrations it applied.
func MigrateConfig(ctx context.Context, cfg config.Config, reg *idemgate.Registry) (applied []string, flavor sqldb.Flavor, err error) {
	if cfg.DatabaseURL == "" {
		return nil, "", errors.New("DATABASE_URL is not set")
	}
	db, err := sqldb.Open(ctx, cfg.DatabaseURL, sqldb.Options{MaxConns: 2, Name: "migrate"})
	if err != nil {
		return nil, "", err
	}
	defer db.Close()
	sets := Migrations(reg)
	if cfg.Migrations != "" {
		var database string
		if err := db.Pool.QueryRow(ctx, `SELECT current_database()`).Scan(&database); err != nil {
			return nil, db.Flavor, fmt.Errorf("read the database's name: %w", err)
		}
		extra, err := OptionalMigrations(cfg, database)
		if err != nil {
			return nil, db.Flavor, err
		}
		if db.Flavor != sqldb.CockroachDB {
			return nil, db.Flavor, fmt.Errorf("IDEMGATE_MIGRATIONS=%s is for CockroachDB; this database is %s", cfg.Migrations, db.Flavor)
		}
		sets = append(sets, extra...)
	}
	applied, err = db.Migrate(ctx, sets...)
	return applied, db.Flavor, err
}

// OptionalMigrations are the migration sets cfg.Migrations selects, after
// the core's and the modules': none by default; with
// IDEMGATE_MIGRATIONS=crdb-multiregion, CockroachDB's multi-region DDL
// (store.MultiRegionMigrations) for cfg's regions, on database.
func OptionalMigrations(cfg config.Config, database string) ([]sqldb.MigrationSet, error) {
	switch cfg.Migrations {
	case "":
		return nil, nil
	case config.MigrationsMultiRegion:
		set, err := store.MultiRegionMigrations(store.Regions{Database: database, Home: cfg.Home(), All: cfg.AllRegions(),
			TenantRegions: cfg.TenantRegions})
		if err != nil {
			return nil, err
		}
		return []sqldb.MigrationSet{set}, nil
	}
	return nil, fmt.Errorf("IDEMGATE_MIGRATIONS=%q is not %q or empty", cfg.Migrations, config.MigrationsMultiRegion)
}

// Redrive drives a dead-lettered command again; the sweeper of a running
// serve emits it.
func Redrive(ctx context.Context, url, operationID string) error {
	if url == "" {
		return errors.New("DATABASE_URL is not set")
	}
	db, err := sqldb.Open(ctx, url, sqldb.Options{MaxConns: 2, Name: "redrive"})
	if err != nil {
		return err
	}
	defer db.Close()
	return store.New(db, 0).Redrive(ctx, ProjectorName, operationID)
}

// backends are the connections a role runs on.
type backends struct {
	Options
	kafka     []kgo.Opt
	topics    events.Topics
	metrics   *prometheus.Registry
	txMetrics *sqldb.TxMetrics

	mu    sync.Mutex
	pools map[string]*store.Store
}

// Each part of a process has a pool of its own, so that none can starve
// another: a projector stuck on a hung database cannot take the API's
// connections, and a burst of requests cannot take the projector's.
// Statement timeouts are a backstop beneath the callers' own deadlines;
// the same bound on each transaction, on the client's side, is one for a
// connection that hangs half-open, where the server never sees the
// statement to time it out.
var poolSpecs = map[string]struct {
	maxConns  int32
	statement time.Duration
}{
	"api":        {8, 5 * time.Second},  // claims and reads; each request also has its own deadline
	"background": {2, 30 * time.Second}, // the emitter's marks, the sweeper, the janitor
	"projector":  {8, 15 * time.Second}, // two group transactions, the upstream calls' bookkeeping, the result marks
	"relay":      {2, 15 * time.Second}, // the outbox relay
	"console":    {2, 10 * time.Second}, // the operator console's pages and redrives
}

// connect opens the role's first pool and checks Kafka answers, creating
// the topics if they are missing. Both are retried while unreachable.
func connect(ctx context.Context, o Options, firstPool string) (*backends, func(), error) {
	if err := o.validate(); err != nil {
		return nil, nil, err
	}
	cfg := o.Config
	keepInherited(cfg.Addr, cfg.MetricsAddr)
	if cfg.DatabaseURL == "" {
		return nil, nil, errors.New("DATABASE_URL is not set")
	}
	if len(cfg.KafkaBrokers) == 0 {
		return nil, nil, errors.New("KAFKA_BROKERS is not set")
	}
	log := o.logger()
	reg := o.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return nil, nil, fmt.Errorf("metrics: %w", err)
		}
	}
	txm, err := sqldb.NewTxMetrics(reg)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	if o.TracerProvider == nil {
		o.TracerProvider = noop.NewTracerProvider()
	}
	kafka, err := cfg.Kafka.ClientOptions(cfg.KafkaBrokers)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka: %w", err)
	}
	// The tracing hook writes each produced record's trace context in its
	// headers and reads it back from the records consumed (W3C trace
	// context, as the OpenTelemetry messaging conventions have it).
	traced := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(kotel.TracerProvider(o.TracerProvider),
		kotel.TracerPropagator(tracing.Propagator()), kotel.ConsumerGroup(cfg.Group))))
	kafka = append(kafka, kgo.WithHooks(traced.Hooks()...))
	b := &backends{Options: o, kafka: kafka, topics: events.TopicsWithPrefix(cfg.TopicPrefix),
		metrics: reg, txMetrics: txm, pools: map[string]*store.Store{}}
	b.Logger = log
	if err := RetryStartup(ctx, log, "database", func() error { _, err := b.store(ctx, firstPool); return err }); err != nil {
		return nil, nil, err
	}
	if err := RetryStartup(ctx, log, "kafka", func() error { return ensureTopics(ctx, b) }); err != nil {
		b.close()
		return nil, nil, err
	}
	return b, b.close, nil
}

// store returns the store on the named pool, opening it the first time.
func (b *backends) store(ctx context.Context, pool string) (*store.Store, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st, ok := b.pools[pool]; ok {
		return st, nil
	}
	spec := poolSpecs[pool]
	maxConns := spec.maxConns
	if pool == "api" && b.Config.APIPoolSize > 0 {
		maxConns = b.Config.APIPoolSize
	}
	if pool == "projector" && b.Config.ProjectorPoolSize > 0 {
		maxConns = b.Config.ProjectorPoolSize
	}
	db, err := sqldb.Open(ctx, b.Config.DatabaseURL, sqldb.Options{MaxConns: maxConns, StatementTimeout: spec.statement,
		TxTimeout: spec.statement, Name: pool, Metrics: b.txMetrics})
	if err != nil {
		return nil, err
	}
	st := store.New(db, b.Config.Lease).WithRegion(b.Config.Region)
	if len(b.Config.AllRegions()) > 1 {
		// Several regions share the database: keep a command's pending row
		// past its acknowledgement, so that another region adopts it if
		// this one is lost before applying it (docs/MULTI-REGION.md).
		st = st.WithAdoption()
	}
	b.pools[pool] = st
	return st, nil
}

func (b *backends) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, st := range b.pools {
		if !st.DB().CloseWithin(2 * time.Second) {
			b.Logger.Warn("database connections still closing (hung half-open?); leaving them to the exit", "pool", name)
		}
		delete(b.pools, name)
	}
}

// stoppedWhileStarting is the end of a role whose start failed with err:
// a clean stop (nil) when its context ended meanwhile, as a SIGTERM while
// the backends are still being reached asks, like a stop once running;
// otherwise err.
func stoppedWhileStarting(ctx context.Context, o Options, err error) error {
	if ctx.Err() != nil {
		o.logger().Info("stopped while starting", "err", err)
		return nil
	}
	return err
}

// RetryStartup retries a role's first connection to a backend with
// backoff until it succeeds or ctx ends (SIGTERM): a backend that is
// briefly down during a rollout must not make the process exit and a
// supervisor back off from it. Configuration errors are not retried, nor
// is a broker's refusal of the client (a wrong password, a certificate
// that does not verify: events.RefusedError).
func RetryStartup(ctx context.Context, logger *slog.Logger, what string, connect func() error) error {
	wait := retry.Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second}.New()
	for attempt := 1; ; attempt++ {
		err := connect()
		if err == nil || errors.Is(err, sqldb.ErrBadURL) || errors.As(err, new(*events.RefusedError)) ||
			!sqldb.IsTransient(err) && !isKafkaUnreachable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s unreachable: %w", what, err)
		}
		logger.Warn("backend unreachable; retrying", "backend", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s unreachable: %w", what, err)
		case <-time.After(wait.NextBackOff()):
		}
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
	settings, err := events.EnsureTopics(ctx, client, b.topics, events.TopicSettings{
		Partitions: b.Config.Partitions, Replication: b.Config.TopicReplication, MinInsync: b.Config.TopicMinInsync,
		// A day less than the dedup records are kept (config.Validate
		// keeps the window at 48 h or more).
		CommandsRetention: b.Config.DedupWindow - 24*time.Hour,
	})
	if err != nil {
		return err
	}
	b.Logger.Debug("topics ensured (existing ones are left as they are)", "topics", b.topics.All(),
		"partitions", settings.Partitions, "replication", settings.Replication, "min_insync", settings.MinInsync)
	return nil
}
