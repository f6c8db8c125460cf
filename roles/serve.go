package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/command"
	"github.com/idemgate/idemgate/console"
	"github.com/idemgate/idemgate/consumer"
	"github.com/idemgate/idemgate/emit"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/health"
	"github.com/idemgate/idemgate/retention"
)

// The API's HTTP timeouts. A client has 5 s to send its headers and 15 s
// for its whole request; an answer may take up to the longest Prefer:
// wait (30 s) and its database work; an idle kept-alive connection is
// closed after a minute.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = command.MaxWait*time.Second + 15*time.Second
	idleTimeout       = 60 * time.Second
	// shutdownGrace bounds how long requests in flight may take to finish
	// at shutdown; waiters are released at once (Drain).
	shutdownGrace = 15 * time.Second
)

// Serve runs the HTTP API on the configured address until ctx ends.
func Serve(ctx context.Context, o Options) error {
	if len(o.Config.APIKeys) == 0 && o.Config.APIKeysFile == "" {
		return errors.New("IDEMGATE_API_KEYS is not set (e.g. key1=tenant-a,key2=tenant-b), nor IDEMGATE_API_KEYS_FILE")
	}
	if _, err := o.Config.KeyHashes(); err != nil {
		return err // before connecting: a configuration mistake is not an outage
	}
	if _, err := o.Config.OperatorKeyHashes(); err != nil {
		return err
	}
	b, closeDB, err := connect(ctx, o, "api")
	if err != nil {
		return stoppedWhileStarting(ctx, o, err)
	}
	defer closeDB()
	l, err := listen(o.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return b.withMetrics(ctx, "background", func(ctx context.Context) error { return b.serve(ctx, l) })
}

// serve serves HTTP on l, with the emitter, the sweeper and the janitor,
// until ctx ends; then waiters get their 202, in-flight requests finish,
// and the last records are delivered and recorded, before it returns.
func (b *backends) serve(ctx context.Context, l net.Listener) error {
	api, err := b.store(ctx, "api")
	if err != nil {
		return err
	}
	background, err := b.store(ctx, "background")
	if err != nil {
		return err
	}
	keys, err := b.Config.KeyHashes()
	if err != nil {
		return err
	}
	client, err := kgo.NewClient(b.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	producer := events.NewProducer(client)
	// The emitter's context outlives the HTTP server's shutdown so that
	// the last requests' records are still delivered and marked.
	emitCtx, stopEmit := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEmit()
	emitter := emit.New(emitCtx, producer, b.topics.Commands, background, b.Faults, b.Logger)
	ready := []health.Dependency{
		{Name: "database", Check: api.DB(), Required: true},
		{Name: "kafka", Check: producer}, // down: degraded, still claiming
	}
	handler, err := command.New(command.Config{
		Registry:         b.Registry,
		Store:            api,
		Emitter:          emitter,
		APIKeys:          keys,
		MismatchStatus:   b.Config.MismatchStatus,
		Retention:        idemgate.Retention{Default: b.Config.Retention, ByOperation: b.Config.RetentionByOperation}.For,
		Ready:            ready,
		Metrics:          b.metrics,
		Faults:           b.Faults,
		Logger:           b.Logger,
		DBTimeout:        b.Config.DBTimeout,
		ClaimConcurrency: min(b.Config.ClaimConcurrency, int(max(b.Config.APIPoolSize, 1))),
		ClaimSpillAfter:  b.Config.ClaimSpillAfter,
		ServeMetrics:     b.Config.MetricsAddr == "",
		TracerProvider:   b.TracerProvider,
		MetricsToken:     b.Config.MetricsToken,
	})
	if err != nil {
		client.Close()
		return err
	}
	routes, err := b.withConsole(ctx, handler.Handler(), client, ready)
	if err != nil {
		client.Close()
		return err
	}
	srv := &http.Server{
		Handler:           routes,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(b.Logger.Handler(), slog.LevelWarn),
	}
	l = limitConnections(guard(l, b.Logger), b.Config.MaxConnections, b.Logger)
	sweeper := emit.NewSweeper(background, emitter, b.Config.SweepInterval, 500, b.Logger)
	janitor := retention.NewJanitor(background, b.Config.JanitorInterval, 1000, b.Config.DedupWindow, b.Logger)
	gauges, err := health.NewGauges(background, b.metrics, b.Logger)
	if err != nil {
		client.Close()
		return fmt.Errorf("metrics: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	emitterDone := make(chan struct{})
	go func() { _ = emitter.Run(emitCtx); close(emitterDone) }()
	g.Go(func() error { return sweeper.Run(gctx) })
	g.Go(func() error { return janitor.Run(gctx) })
	g.Go(func() error { return gauges.Run(gctx, 5*time.Second) })
	g.Go(func() error { return handler.FollowResults(gctx, b.kafka, b.topics.Results) })
	g.Go(func() error { return handler.WatchWaiters(gctx, time.Second) })
	g.Go(func() error { return serveUntilDone(gctx, srv, l, handler.Drain) })
	b.Logger.Info("API listening", "addr", l.Addr().String(), "operations", len(b.Registry.Operations()))
	err = g.Wait()
	// Let buffered records reach Kafka, then record their acknowledgement.
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = client.Flush(flushCtx)
	cancel()
	stopEmit()
	<-emitterDone
	client.Close()
	b.Logger.Info("API stopped")
	return err
}

// withConsole serves the operator console under /console/ beside api
// when operator keys are set (IDEMGATE_OPERATOR_KEYS), on a pool of its
// own, so that its pages never take the API's connections. It shares
// serve's address: the process that has the database, and whose sweeper
// emits what the console drives again.
func (b *backends) withConsole(ctx context.Context, api http.Handler, client *kgo.Client, deps []health.Dependency) (http.Handler, error) {
	keys, err := b.Config.OperatorKeyHashes()
	if err != nil || len(keys) == 0 {
		return api, err
	}
	st, err := b.store(ctx, "console")
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(client)
	con, err := console.New(console.Config{
		Store:        st,
		Keys:         keys,
		Projector:    ProjectorName,
		Registry:     b.Registry,
		Dependencies: deps,
		Lag: func(ctx context.Context) ([]consumer.PartitionLag, error) {
			return consumer.GroupLag(ctx, adm, b.Config.Group, b.topics.Commands)
		},
		Logger: b.Logger.With("component", "console"),
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/console", con.Handler())
	mux.Handle(console.Prefix, con.Handler())
	mux.Handle("/", api)
	b.Logger.Info("operator console on /console/", "operator_keys", len(keys))
	return mux, nil
}

// serveUntilDone serves until ctx ends; then it calls drain (when set),
// stops accepting, and lets in-flight requests finish (up to
// shutdownGrace). A clean shutdown returns nil.
func serveUntilDone(ctx context.Context, srv *http.Server, l net.Listener, drain func()) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if drain != nil {
		drain()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
