package roles

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/idemgate/idemgate/consumer"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/health"
	"github.com/idemgate/idemgate/projector"
	"github.com/idemgate/idemgate/store"
)

// Project runs the projector: it consumes the commands topic in the
// configured group and applies each event once, until ctx ends.
func Project(ctx context.Context, o Options) error {
	b, closeDB, err := connect(ctx, o, "projector")
	if err != nil {
		return stoppedWhileStarting(ctx, o, err)
	}
	defer closeDB()
	return b.withMetrics(ctx, "projector", b.project)
}

// Relay publishes recorded outcomes to the results topic until ctx ends.
func Relay(ctx context.Context, o Options) error {
	b, closeDB, err := connect(ctx, o, "relay")
	if err != nil {
		return stoppedWhileStarting(ctx, o, err)
	}
	defer closeDB()
	return b.withMetrics(ctx, "relay", b.relay)
}

func (b *backends) project(ctx context.Context) error {
	st, err := b.store(ctx, "projector")
	if err != nil {
		return err
	}
	dlq, err := kgo.NewClient(b.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer dlq.Close()
	resultsTopic := ""
	if b.Config.ProjectorPublishes {
		resultsTopic = b.topics.Results
	}
	p, err := projector.New(projector.Config{
		Store:           st,
		Registry:        b.Registry,
		Name:            ProjectorName,
		Producer:        events.NewProducer(dlq),
		DeadLetterTopic: b.topics.DeadLetter,
		ResultsTopic:    resultsTopic,
		Faults:          b.Faults,
		Registerer:      b.metrics,
		Logger:          b.Logger,
		CallBudget: store.CallBudget{Failures: b.Config.CallAttempts, For: b.Config.CallRetryFor,
			MaxUnfinished: b.Config.CallMaxUnfinished},
		CallBackoff:    b.Config.UpstreamBackoff,
		TracerProvider: b.TracerProvider,
	})
	if err != nil {
		return err
	}
	r, err := consumer.New(consumer.Config{
		ClientOptions: b.kafka,
		Group:         b.Config.Group,
		Topics:        []string{b.topics.Commands},
		Logger:        b.Logger,
		IsPermanent:   projector.IsPermanent,
		MaxAttempts:   b.Config.MaxAttempts,
		OnPoison:      p.DeadLetter,
		Registry:      b.metrics,
		InstanceID:    b.Config.InstanceID,
		LagInterval:   b.Config.LagInterval,
		BatchHandler:  p.HandleBatch,
	}, p.Handle)
	if err != nil {
		return err
	}
	b.Logger.Info("projector consuming", "group", b.Config.Group, "topic", b.topics.Commands)
	err = r.Run(ctx)
	b.Logger.Info("projector stopped")
	return err
}

func (b *backends) relay(ctx context.Context) error {
	st, err := b.store(ctx, "relay")
	if err != nil {
		return err
	}
	client, err := kgo.NewClient(b.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	var closeOnce sync.Once
	closeClient := func() { closeOnce.Do(client.Close) }
	defer closeClient()
	relay, err := projector.NewRelay(projector.RelayConfig{Store: st, Producer: events.NewProducer(client), Topic: b.topics.Results,
		Grace: b.Config.RelayGrace, Faults: b.Faults, Logger: b.Logger, Registerer: b.metrics, TracerProvider: b.TracerProvider})
	if err != nil {
		return err
	}
	b.Logger.Info("relay publishing", "topic", b.topics.Results)
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
			b.Logger.Warn("relay: abandoning a publish in flight at shutdown")
			closeClient()
			err = <-done
		}
	}
	b.Logger.Info("relay stopped")
	return err
}

// withMetrics runs role and, when IDEMGATE_METRICS_ADDR is set, serves
// beside it /metrics, /healthz (the process works) and /readyz (the
// role can do its job: the database, through pool, and Kafka answer).
func (b *backends) withMetrics(ctx context.Context, pool string, role func(context.Context) error) error {
	if b.Config.MetricsAddr == "" {
		return role(ctx)
	}
	st, err := b.store(ctx, pool)
	if err != nil {
		return err
	}
	pinger, err := kgo.NewClient(b.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer pinger.Close()
	l, err := listen(b.Config.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", health.MetricsHandler(b.metrics, b.Config.MetricsToken))
	mux.HandleFunc("GET /healthz", health.LiveHandler)
	if b.Config.Pprof {
		// Profiles show the code paths, never data; still behind the token.
		mux.Handle("/debug/pprof/", health.Protect(http.HandlerFunc(pprof.Index), b.Config.MetricsToken))
		mux.Handle("/debug/pprof/profile", health.Protect(http.HandlerFunc(pprof.Profile), b.Config.MetricsToken))
		mux.Handle("/debug/pprof/trace", health.Protect(http.HandlerFunc(pprof.Trace), b.Config.MetricsToken))
	}
	mux.Handle("GET /readyz", health.ReadyHandler([]health.Dependency{
		{Name: "database", Check: st.DB(), Required: true},
		{Name: "kafka", Check: events.NewProducer(pinger), Required: true},
	}, b.Config.DBTimeout))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout}
	g, gctx := errgroup.WithContext(ctx)
	b.Logger.Info("metrics listening", "addr", l.Addr().String())
	g.Go(func() error { return serveUntilDone(gctx, srv, guard(l, b.Logger), nil) })
	g.Go(func() error { return role(gctx) })
	return g.Wait()
}
