// Command pgserver starts and stops a PostgreSQL server for the scripts
// (scripts/pg.sh: the shared test server of scripts/test.sh and the
// benchmark's), through package pgserver: the same server, with the same
// settings, as dev mode and the tests start.
//
// Usage: pgserver start|stop|restart|status|kill-primary|promote|rejoin
//
//	start    start the server, from a fresh cluster unless PG_FRESH=0,
//	         and print DATABASE_URL=postgres://postgres@127.0.0.1:<port>/idemgate?sslmode=disable
//	         on stdout; if it is running already, print its URL. The
//	         server runs on, detached, after the command returns.
//	stop     stop it (fast shutdown), keeping the data
//	restart  stop it if it runs and start it on the same data; print the URL
//	status   exit 0 if it is running, 1 otherwise
//
// With PG_STANDBY=1, a primary and its synchronous streaming standby
// (pgserver.StartPair): start prints
// DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT,127.0.0.1:$PG_STANDBY_PORT/idemgate?sslmode=disable&target_session_attrs=read-write
// (a client tries both and keeps the primary), stop and restart act on
// both, status says which is which, and three more commands are an
// orchestrator's steps:
//
//	kill-primary  kill -9 the primary (its postmaster and children)
//	promote       promote the standby; returns once it takes writes
//	rejoin        bring the old primary back as the standby of the new
//	              one (pg_rewind, else a fresh base backup)
//
// Environment (defaults):
//
//	PG_RUN_DIR=/tmp/idemgate-pg  the cluster is $PG_RUN_DIR/data (with its
//	                             socket and server.log). Keep it under /tmp:
//	                             as root, the server runs as "postgres",
//	                             which cannot reach, say, /root.
//	PG_PORT=15432                the TCP port on 127.0.0.1
//	PG_BIN                       the server binaries (pgserver.Config.BinDir)
//	PG_FRESH=1                   start: 1 = a fresh cluster, 0 = reuse its data
//	PG_FSYNC=off                 on for benchmarks (pgserver.Config.NoFsync)
//	PG_SYNC_COMMIT=on            synchronous_commit (pgserver.Config.SynchronousCommit)
//	PG_STANDBY=0                 1: a primary and a standby, node 1 in
//	                             $PG_RUN_DIR/data on PG_PORT, node 2 in
//	                             $PG_RUN_DIR/data2 on PG_STANDBY_PORT
//	PG_STANDBY_PORT=PG_PORT+1    node 2's TCP port
//
// Messages go to stderr; stdout carries DATABASE_URL=... alone.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/idemgate/idemgate/pgserver"
)

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		if !errors.Is(err, errNotRunning) {
			fmt.Fprintln(os.Stderr, "pgserver: error:", err)
		}
		os.Exit(1)
	}
}

var errNotRunning = errors.New("not running")

const usage = "usage: pgserver start|stop|restart|status (PG_STANDBY=1: also kill-primary|promote|rejoin)"

func run(args []string, getenv func(string) string) error {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	cfg, err := config(getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if cfg.StandbyDataDir != "" {
		return runPair(ctx, args[0], cfg)
	}
	url := fmt.Sprintf("DATABASE_URL=postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", cfg.Port, "idemgate")
	switch args[0] {
	case "start":
		if _, err := pgserver.Start(ctx, cfg); err != nil {
			return err
		}
		fmt.Println(url)
	case "stop":
		srv, ok, err := pgserver.Find(cfg)
		if err != nil || !ok {
			cfg.Logger.Info("not running", "cluster", cfg.DataDir)
			return err
		}
		return srv.Stop(ctx)
	case "restart":
		srv, ok, err := pgserver.Find(cfg)
		if err != nil {
			return err
		}
		if ok {
			if err := srv.Stop(ctx); err != nil {
				return err
			}
		}
		cfg.Fresh = false
		if _, err := pgserver.Start(ctx, cfg); err != nil {
			return err
		}
		fmt.Println(url)
	case "status":
		_, ok, err := pgserver.Find(cfg)
		if err != nil {
			return err
		}
		if !ok {
			cfg.Logger.Info("not running", "cluster", cfg.DataDir)
			return errNotRunning
		}
		cfg.Logger.Info("running", "port", cfg.Port, "cluster", cfg.DataDir)
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	return nil
}

// runPair is run for PG_STANDBY=1: each command opens the pair as its
// clusters are (which node is the primary is read from them).
func runPair(ctx context.Context, command string, cfg pgserver.Config) error {
	p, err := pgserver.OpenPair(cfg)
	if err != nil {
		return err
	}
	switch command {
	case "start", "restart":
		if command == "restart" {
			if err := p.Stop(ctx); err != nil {
				return err
			}
			cfg.Fresh = false
		}
		if p, err = pgserver.StartPair(ctx, cfg); err != nil {
			return err
		}
		fmt.Println("DATABASE_URL=" + p.URL())
	case "stop":
		return p.Stop(ctx)
	case "status":
		primary, standby := p.Primary(), p.Standby()
		for i, n := range p.Nodes() {
			_, up, _ := pgserver.Find(nodeConfig(cfg, i))
			role := "down"
			switch {
			case n == primary:
				role = "primary"
			case n == standby && up:
				role = "standby"
			case n == standby:
				role = "standby (down)"
			}
			cfg.Logger.Info("node", "node", i+1, "role", role, "port", nodeConfig(cfg, i).Port)
		}
		if primary == nil {
			return errNotRunning
		}
	case "kill-primary":
		return p.KillPrimary()
	case "promote":
		return p.Promote(ctx)
	case "rejoin":
		return p.Rejoin(ctx)
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	return nil
}

// nodeConfig is node i's (0 or 1) Config of a pair's.
func nodeConfig(cfg pgserver.Config, i int) pgserver.Config {
	if i == 1 {
		cfg.DataDir, cfg.Port = cfg.StandbyDataDir, cfg.StandbyPort
	}
	cfg.StandbyDataDir, cfg.StandbyPort = "", 0
	return cfg
}

// config reads the environment (see the package's comment).
func config(getenv func(string) string) (pgserver.Config, error) {
	or := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	dir := filepath.Clean(or("PG_RUN_DIR", "/tmp/idemgate-pg"))
	if dir == "/" || dir == "." || dir == filepath.Clean(os.TempDir()) {
		return pgserver.Config{}, fmt.Errorf("refusing PG_RUN_DIR=%q: its data folder is removed at each fresh start", dir)
	}
	port, err := strconv.Atoi(or("PG_PORT", "15432"))
	if err != nil || port <= 0 || port > 65535 {
		return pgserver.Config{}, fmt.Errorf("PG_PORT=%q is not a port", getenv("PG_PORT"))
	}
	fsync := or("PG_FSYNC", "off")
	if fsync != "on" && fsync != "off" {
		return pgserver.Config{}, fmt.Errorf("PG_FSYNC=%q is not on or off", fsync)
	}
	var standbyDir string
	standbyPort := port + 1
	switch or("PG_STANDBY", "0") {
	case "0":
	case "1":
		standbyDir = filepath.Join(dir, "data2")
		if v := getenv("PG_STANDBY_PORT"); v != "" {
			if standbyPort, err = strconv.Atoi(v); err != nil || standbyPort <= 0 || standbyPort > 65535 || standbyPort == port {
				return pgserver.Config{}, fmt.Errorf("PG_STANDBY_PORT=%q is not a port other than PG_PORT", v)
			}
		}
	default:
		return pgserver.Config{}, fmt.Errorf("PG_STANDBY=%q is not 0 or 1", getenv("PG_STANDBY"))
	}
	if standbyDir == "" {
		standbyPort = 0
	}
	return pgserver.Config{
		StandbyDataDir:    standbyDir,
		StandbyPort:       standbyPort,
		DataDir:           filepath.Join(dir, "data"),
		Port:              port,
		BinDir:            getenv("PG_BIN"),
		Fresh:             or("PG_FRESH", "1") == "1",
		NoFsync:           fsync == "off",
		SynchronousCommit: or("PG_SYNC_COMMIT", "on"),
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}, nil
}
