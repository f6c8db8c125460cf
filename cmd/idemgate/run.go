package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/fault"
)

const usage = `usage: idemgate <command> [flags]

commands:
  dev      run everything in one process on a private PostgreSQL and an in-process Kafka
  serve    run the HTTP API (and its sweeper)
  project  run the projector (consumer group on the commands topic)
  relay    publish recorded outcomes to the results topic
  migrate  apply the SQL schema
  redrive  <operation_id>: drive a dead-lettered command again

environment: DATABASE_URL, KAFKA_BROKERS, IDEMGATE_API_KEYS, IDEMGATE_ADDR, ...
(see README.md)`

// usageError is a mistake in the command line; main exits 2 for it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run is the whole program; main and the end-to-end tests call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return &usageError{"no command given"}
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	faults, err := fault.FromEnv(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDev(ctx, cfg, faults, rest, stdout, stderr, logger)
	case "serve":
		return runServe(ctx, cfg, faults, rest, stderr, logger)
	case "project":
		return runRole(runProjector)(ctx, cfg, faults, rest, stderr, logger)
	case "relay":
		return runRole(runRelay)(ctx, cfg, faults, rest, stderr, logger)
	case "migrate":
		return runMigrate(ctx, cfg, rest, stdout, stderr)
	case "redrive":
		return runRedrive(ctx, cfg, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return &usageError{fmt.Sprintf("unknown command %q (try: dev, serve, project, relay, migrate, redrive)", cmd)}
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

func requireSetting(name, value string) error {
	if value == "" {
		return fmt.Errorf("%s is not set", name)
	}
	return nil
}
