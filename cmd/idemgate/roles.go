package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/command"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/consumer"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/projector"
	"github.com/idemgate/idemgate/sqldb"
)

// deps are what every role is built from.
type deps struct {
	cfg    config.Config
	db     *sqldb.DB
	kafka  []kgo.Opt
	logger *slog.Logger
}

// connect opens the database and checks Kafka answers, creating the
// topics if they are missing.
func connect(ctx context.Context, cfg config.Config, logger *slog.Logger) (deps, func(), error) {
	if err := requireSetting("DATABASE_URL", cfg.DatabaseURL); err != nil {
		return deps{}, nil, err
	}
	if len(cfg.KafkaBrokers) == 0 {
		return deps{}, nil, errors.New("KAFKA_BROKERS is not set")
	}
	db, err := sqldb.Open(ctx, cfg.DatabaseURL, 0)
	if err != nil {
		return deps{}, nil, err
	}
	d := deps{cfg: cfg, db: db, kafka: events.ClientOptions(cfg.KafkaBrokers), logger: logger}
	if err := ensureTopics(ctx, d); err != nil {
		db.Close()
		return deps{}, nil, err
	}
	return d, db.Close, nil
}

func ensureTopics(ctx context.Context, d deps) error {
	client, err := kgo.NewClient(d.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return events.EnsureTopics(ctx, client, events.TopicsWithPrefix(d.cfg.TopicPrefix), d.cfg.Partitions)
}

// runAPI serves HTTP on l, with the emitter and the sweeper, until ctx
// ends; then in-flight requests finish before it returns.
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
	emitter := command.NewEmitter(emitCtx, producer, events.TopicsWithPrefix(d.cfg.TopicPrefix).Commands, claims, d.logger)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	api := command.New(command.Config{
		APIKeys:        d.cfg.APIKeys,
		MismatchStatus: d.cfg.MismatchStatus,
		Claims:         claims,
		Emitter:        emitter,
		Reads:          command.NewReads(d.db),
		Ready:          map[string]command.Checker{"database": d.db, "kafka": producer},
		Registry:       reg,
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
	g.Go(func() error {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})
	d.logger.Info("API listening", "addr", l.Addr().String())
	err = g.Wait()
	// Let buffered records reach Kafka, then record their acknowledgement.
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = client.Flush(flushCtx)
	cancel()
	stopEmit()
	<-emitterDone
	client.Close()
	return err
}

// runProjector consumes the commands topic and applies each event once.
func runProjector(ctx context.Context, d deps) error {
	p := projector.New(d.db, "payments", map[string]projector.Applier{
		idemgate.OpCreatePayment: projector.CreatePayment{},
		idemgate.OpCreateRefund:  projector.CreateRefund{},
	}, d.logger)
	r, err := consumer.New(consumer.Config{
		ClientOptions: d.kafka,
		Group:         d.cfg.Group,
		Topics:        []string{events.TopicsWithPrefix(d.cfg.TopicPrefix).Commands},
		Logger:        d.logger,
		IsPermanent:   func(err error) bool { return errors.Is(err, projector.ErrPermanent) },
	}, p.Handle)
	if err != nil {
		return err
	}
	d.logger.Info("projector consuming", "group", d.cfg.Group)
	return r.Run(ctx)
}

func runServe(ctx context.Context, cfg config.Config, args []string, stderr io.Writer, logger *slog.Logger) error {
	if err := parseFlags(newFlagSet("serve"), args, stderr); err != nil {
		return err
	}
	if len(cfg.APIKeys) == 0 {
		return errors.New("IDEMGATE_API_KEYS is not set (e.g. key1=tenant-a,key2=tenant-b)")
	}
	d, closeDB, err := connect(ctx, cfg, logger)
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

func runProject(ctx context.Context, cfg config.Config, args []string, stderr io.Writer, logger *slog.Logger) error {
	if err := parseFlags(newFlagSet("project"), args, stderr); err != nil {
		return err
	}
	d, closeDB, err := connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	return runProjector(ctx, d)
}

func runMigrate(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer, logger *slog.Logger) error {
	if err := parseFlags(newFlagSet("migrate"), args, stderr); err != nil {
		return err
	}
	if err := requireSetting("DATABASE_URL", cfg.DatabaseURL); err != nil {
		return err
	}
	db, err := sqldb.Open(ctx, cfg.DatabaseURL, 2)
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
