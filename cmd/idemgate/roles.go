package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/command"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/consumer"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/projector"
	"github.com/idemgate/idemgate/sqldb"
)

// projectorName scopes the payments projector's dedup records.
const projectorName = "payments"

// deps are what every role is built from.
type deps struct {
	cfg      config.Config
	db       *sqldb.DB
	kafka    []kgo.Opt
	topics   events.Topics
	faults   *fault.Injector
	registry *prometheus.Registry
	logger   *slog.Logger
}

// connect opens the database and checks Kafka answers, creating the
// topics if they are missing.
func connect(ctx context.Context, cfg config.Config, faults *fault.Injector, logger *slog.Logger) (deps, func(), error) {
	if err := requireSetting("DATABASE_URL", cfg.DatabaseURL); err != nil {
		return deps{}, nil, err
	}
	if len(cfg.KafkaBrokers) == 0 {
		return deps{}, nil, errors.New("KAFKA_BROKERS is not set")
	}
	var db *sqldb.DB
	err := retryStartup(ctx, logger, "database", func() (err error) {
		db, err = sqldb.Open(ctx, cfg.DatabaseURL, 0)
		return err
	})
	if err != nil {
		return deps{}, nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := deps{cfg: cfg, db: db, kafka: events.ClientOptions(cfg.KafkaBrokers), topics: events.TopicsWithPrefix(cfg.TopicPrefix),
		faults: faults, registry: reg, logger: logger}
	if err := retryStartup(ctx, logger, "kafka", func() error { return ensureTopics(ctx, d) }); err != nil {
		db.Close()
		return deps{}, nil, err
	}
	return d, db.Close, nil
}

// retryStartup retries a role's first connection to a backend with
// backoff until it succeeds or ctx ends (SIGTERM): a backend that is
// briefly down during a rollout must not make the process exit and a
// supervisor back off from it. Configuration errors are not retried.
func retryStartup(ctx context.Context, logger *slog.Logger, what string, connect func() error) error {
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

func ensureTopics(ctx context.Context, d deps) error {
	client, err := kgo.NewClient(d.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return events.EnsureTopics(ctx, client, d.topics, d.cfg.Partitions)
}

// runAPI serves HTTP on l, with the emitter, the sweeper and the janitor,
// until ctx ends; then in-flight requests finish, and the last records
// are delivered, before it returns.
func runAPI(ctx context.Context, d deps, l net.Listener) error {
	client, err := kgo.NewClient(d.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	producer := events.NewProducer(client)
	claims := command.NewClaims(d.db, d.cfg.Lease, d.cfg.RetentionFor)
	// The emitter's context outlives the HTTP server's shutdown so that
	// the last requests' records are still delivered and marked.
	emitCtx, stopEmit := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEmit()
	emitter := command.NewEmitter(emitCtx, producer, d.topics.Commands, claims, d.faults, d.logger)
	api := command.New(command.Config{
		APIKeys:        d.cfg.APIKeys,
		MismatchStatus: d.cfg.MismatchStatus,
		Claims:         claims,
		Emitter:        emitter,
		Reads:          command.NewReads(d.db),
		Ready:          map[string]command.Checker{"database": d.db, "kafka": producer},
		Registry:       d.registry,
		Faults:         d.faults,
		Logger:         d.logger,
	})
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelWarn)}
	sweeper := command.NewSweeper(claims, emitter, d.cfg.SweepInterval, 500, d.logger)
	janitor := command.NewJanitor(claims, d.cfg.JanitorInterval, 1000, d.logger)

	g, gctx := errgroup.WithContext(ctx)
	emitterDone := make(chan struct{})
	go func() { _ = emitter.Run(emitCtx); close(emitterDone) }()
	g.Go(func() error { return sweeper.Run(gctx) })
	g.Go(func() error { return janitor.Run(gctx) })
	g.Go(func() error { return serveUntilDone(gctx, srv, l) })
	d.logger.Info("API listening", "addr", l.Addr().String())
	err = g.Wait()
	// Let buffered records reach Kafka, then record their acknowledgement.
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = client.Flush(flushCtx)
	cancel()
	stopEmit()
	<-emitterDone
	client.Close()
	d.logger.Info("API stopped")
	return err
}

// serveUntilDone serves until ctx ends, then lets in-flight requests
// finish (up to 15 s).
func serveUntilDone(ctx context.Context, srv *http.Server, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// runProjector consumes the commands topic and applies each event once.
func runProjector(ctx context.Context, d deps) error {
	dlq, err := kgo.NewClient(d.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer dlq.Close()
	p := projector.New(projector.Config{
		DB:   d.db,
		Name: projectorName,
		Appliers: map[string]projector.Applier{
			idemgate.OpCreatePayment: projector.CreatePayment{},
			idemgate.OpCreateRefund:  projector.CreateRefund{},
		},
		Producer:        events.NewProducer(dlq),
		DeadLetterTopic: d.topics.DeadLetter,
		Faults:          d.faults,
		Registry:        d.registry,
		Logger:          d.logger,
	})
	r, err := consumer.New(consumer.Config{
		ClientOptions: d.kafka,
		Group:         d.cfg.Group,
		Topics:        []string{d.topics.Commands},
		Logger:        d.logger,
		IsPermanent:   projector.IsPermanent,
		MaxAttempts:   d.cfg.MaxAttempts,
		OnPoison:      p.DeadLetter,
		Registry:      d.registry,
		InstanceID:    d.cfg.InstanceID,
	}, p.Handle)
	if err != nil {
		return err
	}
	d.logger.Info("projector consuming", "group", d.cfg.Group, "topic", d.topics.Commands)
	err = r.Run(ctx)
	d.logger.Info("projector stopped")
	return err
}

// runRelay publishes recorded outcomes to the results topic.
func runRelay(ctx context.Context, d deps) error {
	client, err := kgo.NewClient(d.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	var closeOnce sync.Once
	closeClient := func() { closeOnce.Do(client.Close) }
	defer closeClient()
	relay := projector.NewRelay(d.db, events.NewProducer(client), d.topics.Results, 500, 200*time.Millisecond, d.faults, d.logger)
	d.logger.Info("relay publishing", "topic", d.topics.Results)
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			// A produce request already sent is retried by franz-go until
			// its delivery timeout, whatever its context says; closing the
			// client fails it. Its rows stay unsent and are published by
			// the next relay: nothing is lost.
			d.logger.Warn("relay: abandoning a publish in flight at shutdown")
			closeClient()
			err = <-done
		}
	}
	d.logger.Info("relay stopped")
	return err
}

// withMetrics runs role and, when IDEMGATE_METRICS_ADDR is set, serves
// /metrics and /healthz beside it.
func withMetrics(ctx context.Context, d deps, role func(context.Context, deps) error) error {
	if d.cfg.MetricsAddr == "" {
		return role(ctx, d)
	}
	l, err := net.Listen("tcp", d.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveUntilDone(gctx, srv, l) })
	g.Go(func() error { return role(gctx, d) })
	return g.Wait()
}

func runServe(ctx context.Context, cfg config.Config, faults *fault.Injector, args []string, stderr io.Writer, logger *slog.Logger) error {
	if err := parseFlags(newFlagSet("serve"), args, stderr); err != nil {
		return err
	}
	if len(cfg.APIKeys) == 0 {
		return errors.New("IDEMGATE_API_KEYS is not set (e.g. key1=tenant-a,key2=tenant-b)")
	}
	d, closeDB, err := connect(ctx, cfg, faults, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return runAPI(ctx, d, l)
}

// runRole starts a role that needs only the backends (project, relay).
func runRole(role func(context.Context, deps) error) func(context.Context, config.Config, *fault.Injector, []string, io.Writer, *slog.Logger) error {
	return func(ctx context.Context, cfg config.Config, faults *fault.Injector, args []string, stderr io.Writer, logger *slog.Logger) error {
		if err := parseFlags(newFlagSet("role"), args, stderr); err != nil {
			return err
		}
		d, closeDB, err := connect(ctx, cfg, faults, logger)
		if err != nil {
			return err
		}
		defer closeDB()
		return withMetrics(ctx, d, role)
	}
}

func runMigrate(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	if err := parseFlags(newFlagSet("migrate"), args, stderr); err != nil {
		return err
	}
	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrated (%s): %d applied %v\n", db.Flavor, len(applied), applied)
	return nil
}

// runRedrive drives a dead-lettered command again.
func runRedrive(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("redrive")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return &usageError{"usage: idemgate redrive <operation_id>"}
	}
	id := fs.Arg(0)
	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := projector.Redrive(ctx, db, projectorName, id); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "operation %s will be emitted again by the sweeper of a running 'serve'\n", id)
	return nil
}

func openDB(ctx context.Context, cfg config.Config) (*sqldb.DB, error) {
	if err := requireSetting("DATABASE_URL", cfg.DatabaseURL); err != nil {
		return nil, err
	}
	return sqldb.Open(ctx, cfg.DatabaseURL, 2)
}
