package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/idemgate/idemgate/command"
	"github.com/idemgate/idemgate/events"
)

// Serve runs the HTTP API on the configured address until ctx ends.
func Serve(ctx context.Context, o Options) error {
	if len(o.Config.APIKeys) == 0 {
		return errors.New("IDEMGATE_API_KEYS is not set (e.g. key1=tenant-a,key2=tenant-b)")
	}
	b, closeDB, err := connect(ctx, o)
	if err != nil {
		return err
	}
	defer closeDB()
	l, err := net.Listen("tcp", o.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return b.serve(ctx, l)
}

// serve serves HTTP on l, with the emitter, the sweeper and the janitor,
// until ctx ends; then in-flight requests finish, and the last records
// are delivered, before it returns.
func (b *backends) serve(ctx context.Context, l net.Listener) error {
	client, err := kgo.NewClient(b.kafka...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	producer := events.NewProducer(client)
	// The emitter's context outlives the HTTP server's shutdown so that
	// the last requests' records are still delivered and marked.
	emitCtx, stopEmit := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEmit()
	emitter := command.NewEmitter(emitCtx, producer, b.topics.Commands, b.store, b.Faults, b.Logger)
	api, err := command.New(command.Config{
		Registry:       b.Registry,
		Store:          b.store,
		Emitter:        emitter,
		APIKeys:        b.Config.APIKeys,
		MismatchStatus: b.Config.MismatchStatus,
		Retention:      retention(b.Config),
		Ready:          map[string]command.Checker{"database": b.db, "kafka": producer},
		Metrics:        b.metrics,
		Faults:         b.Faults,
		Logger:         b.Logger,
	})
	if err != nil {
		client.Close()
		return err
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(b.Logger.Handler(), slog.LevelWarn)}
	sweeper := command.NewSweeper(b.store, emitter, b.Config.SweepInterval, 500, b.Logger)
	janitor := command.NewJanitor(b.store, b.Config.JanitorInterval, 1000, b.Logger)

	g, gctx := errgroup.WithContext(ctx)
	emitterDone := make(chan struct{})
	go func() { _ = emitter.Run(emitCtx); close(emitterDone) }()
	g.Go(func() error { return sweeper.Run(gctx) })
	g.Go(func() error { return janitor.Run(gctx) })
	g.Go(func() error { return serveUntilDone(gctx, srv, l) })
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
