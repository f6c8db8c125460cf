package roles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/pgserver"
)

// DevConfig is where the dev mode keeps its data and listens.
type DevConfig struct {
	// Addr is the API's listen address.
	Addr string
	// DataDir holds the database and the Kafka log (".idemgate").
	DataDir string
	// KafkaPort is the in-process Kafka's port on 127.0.0.1 (0: any).
	KafkaPort int
	// Banner receives the address, the API keys and the routes once the
	// API listens, then Hint (an example request, say).
	Banner io.Writer
	Hint   string
}

// Dev is the embedded default: a private PostgreSQL cluster and an
// in-process Kafka (kfake) whose log lives in the data folder, the schema
// migrated, and every role in one process. Killed with -9 and started
// again on the same folder, it finds its database and log again and
// completes every command it had accepted. DATABASE_URL and KAFKA_BROKERS
// replace either backend.
func Dev(ctx context.Context, o Options, dc DevConfig) error {
	if err := o.validate(); err != nil {
		return err
	}
	logger := o.logger()
	cfg := o.Config
	if len(cfg.KafkaBrokers) == 0 && (cfg.Kafka.TLS || cfg.Kafka.SASLMechanism != "") {
		return errors.New("KAFKA_TLS and KAFKA_SASL_* need KAFKA_BROKERS: the in-process Kafka speaks plaintext")
	}
	if dc.DataDir == "" {
		dc.DataDir = ".idemgate"
	}
	if dc.Addr == "" {
		dc.Addr = cfg.Addr
	}
	keepInherited(dc.Addr, cfg.MetricsAddr)
	if err := os.MkdirAll(dc.DataDir, 0o755); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if cfg.DatabaseURL == "" {
		pg, err := pgserver.Start(ctx, pgserver.Config{DataDir: filepath.Join(dc.DataDir, "pg"), Logger: logger})
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
			kfake.Ports(dc.KafkaPort),
			kfake.DataDir(filepath.Join(dc.DataDir, "kafka")),
			kfake.SyncWrites(),
			// Its accept loop would end on the first EMFILE: guarded, it
			// waits for file handles and goes on.
			kfake.ListenFn(func(network, addr string) (net.Listener, error) {
				l, err := net.Listen(network, addr)
				if err != nil {
					return nil, err
				}
				return guard(l, logger), nil
			}),
		)
		if err != nil {
			return fmt.Errorf("in-process kafka: %w", err)
		}
		defer cluster.Close()
		cfg.KafkaBrokers = cluster.ListenAddrs()
		logger.Info("in-process Kafka (kfake) listening", "brokers", cfg.KafkaBrokers, "log", filepath.Join(dc.DataDir, "kafka"))
	}
	if len(cfg.APIKeys) == 0 && cfg.APIKeysFile == "" {
		cfg.APIKeys = config.DevAPIKeys()
	}
	if len(cfg.OperatorKeys) == 0 && cfg.OperatorKeysFile == "" {
		cfg.OperatorKeys = map[string]string{config.DevOperatorKey: "*"}
	}
	if _, _, err := Migrate(ctx, cfg.DatabaseURL, o.Registry); err != nil {
		return err
	}
	o.Config = cfg
	b, closeDB, err := connect(ctx, o, "api")
	if err != nil {
		return stoppedWhileStarting(ctx, o, err)
	}
	defer closeDB()
	l, err := listen(dc.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if dc.Banner != nil {
		printBanner(dc.Banner, l.Addr().String(), cfg.APIKeys, o.Registry)
		printConsole(dc.Banner, l.Addr().String(), cfg)
		fmt.Fprint(dc.Banner, strings.ReplaceAll(dc.Hint, "{addr}", l.Addr().String()))
	}
	return b.withMetrics(ctx, "background", func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return b.serve(gctx, l) })
		g.Go(func() error { return b.project(gctx) })
		g.Go(func() error { return b.relay(gctx) })
		return g.Wait()
	})
}

func printBanner(w io.Writer, addr string, keys map[string]string, reg *idemgate.Registry) {
	fmt.Fprintf(w, "idemgate dev: API on http://%s\n", addr)
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "  API key %s -> tenant %s\n", k, keys[k])
	}
	for _, op := range reg.Operations() {
		fmt.Fprintf(w, "  POST %s (%s)\n", op.Path, op.Name)
	}
}

// printConsole says where the operator console is, with the operator
// keys given in the environment (a file's are not shown).
func printConsole(w io.Writer, addr string, cfg config.Config) {
	fmt.Fprintf(w, "idemgate dev: operator console on http://%s/console/\n", addr)
	names := make([]string, 0, len(cfg.OperatorKeys))
	for k := range cfg.OperatorKeys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "  operator key %s -> scope %s\n", k, cfg.OperatorKeys[k])
	}
	if cfg.OperatorKeysFile != "" {
		fmt.Fprintf(w, "  operator keys from %s\n", cfg.OperatorKeysFile)
	}
}
