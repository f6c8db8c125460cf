package main

import (
	"context"

	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/gateway"
	"github.com/idemgate/idemgate/logging"
	"github.com/idemgate/idemgate/payments"
	"github.com/idemgate/idemgate/roles"
	"github.com/idemgate/idemgate/tracing"
)

const usage = `usage: idemgate [--config FILE] <command> [flags]

commands:
  dev      run everything in one process on a private PostgreSQL and an in-process Kafka
  serve    run the HTTP API (and its sweeper)
  project  run the projector (consumer group on the commands topic)
  relay    publish recorded responses to the results topic
  migrate  apply the SQL schema
  redrive  <operation_id>: drive a dead-lettered command again
  inspect  <operation_id> | --tenant T --operation O --key K: everything known of a key
  list     [--state pending|dead_lettered|outcome_unknown|...] [--older-than 5m] [--limit 100]: claims that need a look
  healthcheck [--url URL]: exit 0 when the role's /readyz answers 200 (for images without a shell)
  config check: validate the configuration and print it, secrets masked

environment: DATABASE_URL, KAFKA_BROKERS, IDEMGATE_API_KEYS, IDEMGATE_ADDR, ...
(see README.md); a config file (--config, IDEMGATE_CONFIG) holds the same, the environment wins`

const devHint = `try: curl -i -X POST http://{addr}/v1/payments -H 'Authorization: Bearer dev-key-a' -H 'Idempotency-Key: demo-1' -H 'Content-Type: application/json' -d '{"amount":1000,"currency":"EUR","customer":"cus_1"}'
`

// usageError is a mistake in the command line; main exits 2 for it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run is the whole program; main and the end-to-end tests call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// A config file (--config FILE before the command, or
	// IDEMGATE_CONFIG) holds the same settings as the environment; the
	// environment overrides it.
	configFile := getenv("IDEMGATE_CONFIG")
	if len(args) > 0 && (args[0] == "--config" || strings.HasPrefix(args[0], "--config=")) {
		if v, ok := strings.CutPrefix(args[0], "--config="); ok {
			configFile, args = v, args[1:]
		} else if len(args) > 1 {
			configFile, args = args[1], args[2:]
		} else {
			return &usageError{"--config needs a file"}
		}
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return &usageError{"no command given"}
	}
	if configFile != "" {
		var err error
		if getenv, err = config.WithFile(configFile, getenv); err != nil {
			return err
		}
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	faults, err := fault.FromEnv(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	logger, err := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	cmd, rest := args[0], args[1:]
	tp, stopTracing, err := tracing.Setup(ctx, getenv, "idemgate-"+cmd)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	defer func() { _ = stopTracing(context.WithoutCancel(ctx)) }()
	o := roles.Options{
		Config:         cfg,
		Faults:         faults,
		Logger:         logger,
		Metrics:        prometheus.NewRegistry(),
		TracerProvider: tp,
	}
	switch cmd {
	case "dev":
		fs := newFlagSet("dev")
		dc := roles.DevConfig{Banner: stdout, Hint: devHint}
		fs.StringVar(&dc.Addr, "addr", cfg.Addr, "API listen address")
		fs.StringVar(&dc.DataDir, "data-dir", ".idemgate", "folder for the database and the Kafka log")
		fs.IntVar(&dc.KafkaPort, "kafka-port", 0, "port of the in-process Kafka on 127.0.0.1 (0: any free port)")
		fs.StringVar(&o.Config.Routes, "routes", cfg.Routes, "gateway routes file (YAML)")
		if err := parseFlags(fs, rest, stderr); err != nil {
			return err
		}
		if o.Registry, err = registry(o); err != nil {
			return err
		}
		return roles.Dev(ctx, o, dc)
	case "serve", "project", "relay":
		fs := newFlagSet(cmd)
		if cmd != "relay" {
			fs.StringVar(&o.Config.Routes, "routes", cfg.Routes, "gateway routes file (YAML)")
		}
		if err := parseFlags(fs, rest, stderr); err != nil {
			return err
		}
		if o.Registry, err = registry(o); err != nil {
			return err
		}
		return map[string]func(context.Context, roles.Options) error{
			"serve": roles.Serve, "project": roles.Project, "relay": roles.Relay,
		}[cmd](ctx, o)
	case "migrate":
		if err := parseFlags(newFlagSet("migrate"), rest, stderr); err != nil {
			return err
		}
		reg, err := registry(o)
		if err != nil {
			return err
		}
		applied, flavor, err := roles.MigrateConfig(ctx, cfg, reg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "migrated (%s): %d applied %v\n", flavor, len(applied), applied)
		return nil
	case "redrive":
		fs := newFlagSet("redrive")
		if err := fs.Parse(rest); err != nil || fs.NArg() != 1 {
			return &usageError{"usage: idemgate redrive <operation_id>"}
		}
		if err := roles.Redrive(ctx, cfg.DatabaseURL, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "operation %s will be emitted again by the sweeper of a running 'serve'\n", fs.Arg(0))
		return nil
	case "config":
		return configCommand(ctx, cfg, getenv, rest, stdout, stderr)
	case "inspect":
		return inspect(ctx, cfg, rest, stdout, stderr)
	case "list":
		return list(ctx, cfg, rest, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, cfg.Addr, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return &usageError{fmt.Sprintf("unknown command %q (try: dev, serve, project, relay, migrate, redrive, inspect, list, healthcheck, config)", cmd)}
}

// registry holds the reference payments module and, when a routes file
// is given, the gateway's routes.
func registry(o roles.Options) (*idemgate.Registry, error) {
	mods := []idemgate.Module{payments.Module(payments.Config{})}
	if o.Config.Routes != "" {
		var metrics prometheus.Registerer
		if o.Metrics != nil { // a nil *Registry in the interface would not be nil
			metrics = o.Metrics
		}
		gw, err := gateway.Load(o.Config.Routes, gateway.Options{Registerer: metrics})
		if err != nil {
			return nil, err
		}
		mods = append(mods, gw)
	}
	return idemgate.NewRegistry(mods...)
}

// parseFlags parses a subcommand's flags, turning mistakes into usage
// errors with one readable line.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return &usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("%s: unexpected arguments: %s", fs.Name(), strings.Join(fs.Args(), " "))}
	}
	return nil
}
