package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/pgserver"
	"github.com/idemgate/idemgate/sqldb"
)

// runDev is the embedded default: a private PostgreSQL cluster and an
// in-process Kafka (kfake) whose log lives in the data folder, and every
// role in one process. Killed with -9 and started again on the same
// folder, it finds its database and log again and completes every command
// it had accepted. DATABASE_URL and KAFKA_BROKERS replace either backend.
func runDev(ctx context.Context, cfg config.Config, faults *fault.Injector, args []string, stdout, stderr io.Writer, logger *slog.Logger) error {
	fs := newFlagSet("dev")
	addr := fs.String("addr", cfg.Addr, "API listen address")
	dataDir := fs.String("data-dir", ".idemgate", "folder for the database and the Kafka log")
	kafkaPort := fs.Int("kafka-port", 0, "port of the in-process Kafka on 127.0.0.1 (0: any free port)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if cfg.DatabaseURL == "" {
		pg, err := pgserver.Start(ctx, pgserver.Config{DataDir: filepath.Join(*dataDir, "pg"), Logger: logger})
		if err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pg.Stop(stopCtx); err != nil {
				logger.Warn("stop PostgreSQL", "err", err)
			}
		}()
		cfg.DatabaseURL = pg.URL()
	}
	if len(cfg.KafkaBrokers) == 0 {
		cluster, err := kfake.NewCluster(
			kfake.NumBrokers(1),
			kfake.Ports(*kafkaPort),
			kfake.DataDir(filepath.Join(*dataDir, "kafka")),
			kfake.SyncWrites(),
		)
		if err != nil {
			return fmt.Errorf("in-process kafka: %w", err)
		}
		defer cluster.Close()
		cfg.KafkaBrokers = cluster.ListenAddrs()
		logger.Info("in-process Kafka (kfake) listening", "brokers", cfg.KafkaBrokers, "log", filepath.Join(*dataDir, "kafka"))
	}
	if len(cfg.APIKeys) == 0 {
		cfg.APIKeys = config.DevAPIKeys()
	}
	db, err := sqldb.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	_, err = db.Migrate(ctx)
	db.Close()
	if err != nil {
		return err
	}
	d, closeDB, err := connect(ctx, cfg, faults, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	printDevBanner(stdout, l.Addr().String(), cfg.APIKeys)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return runAPI(gctx, d, l) })
	g.Go(func() error { return runProjector(gctx, d) })
	g.Go(func() error { return runRelay(gctx, d) })
	return g.Wait()
}

func printDevBanner(w io.Writer, addr string, keys map[string]string) {
	fmt.Fprintf(w, "idemgate dev: API on http://%s\n", addr)
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "  API key %s -> tenant %s\n", k, keys[k])
	}
	fmt.Fprintf(w, "try: curl -i -X POST http://%s/v1/payments -H 'Authorization: Bearer %s' -H 'Idempotency-Key: demo-1' -H 'Content-Type: application/json' -d '{\"amount\":1000,\"currency\":\"EUR\",\"customer\":\"cus_1\"}'\n", addr, names[0])
}
