// Command loadgen is the load generator of `make bench` (scripts/bench.sh):
// it sends POST /v1/payments with unique or repeated Idempotency-Keys to
// idemgate or to the baseline bench/syncclaim, and measures what the issue
// on throughput asks for, so that both are measured by the same client.
//
// Modes:
//
//	closed  -conns workers, each sending its next request when the previous
//	        is answered, for -duration (or -requests in all); unique keys.
//	open    -rate requests per second on a fixed schedule; each latency
//	        counts from the request's slot, so that a stall cannot hide
//	        the requests it delayed (coordinated omission).
//	replay  create -keys keys, then retry them at random for -duration.
//	wait    only wait until the claims of -prefix are COMPLETED (the
//	        projector's drain of a backlog).
//	hog     no requests: burn -share of one core for -duration (the
//	        contended round's background job).
//
// With -db and -wait-complete it then waits until the run's claims are
// COMPLETED and reports accepted-and-completed per second and the
// 202->COMPLETED latency, then waits until the outbox relay has published
// them and reports when their events were on Kafka (-schema says whose
// tables: idemgate's or bench/syncoutbox's); -watch and -metrics add CPU time per command by
// process and the transaction retry counters. One JSON line goes to
// stdout, a summary for people to stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Mode == "hog" {
		hog(ctx, cfg.Share, cfg.Duration)
		return 0
	}
	r, err := measure(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	line, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(line))
	human(stderr, r)
	return 0
}

// snapshot is what is read before and after a measure.
type snapshot struct {
	cpu                map[string]float64
	metrics            map[string]float64
	hasMetrics         bool
	commits, rollbacks int64
}

func take(ctx context.Context, cfg Config, db *pgx.Conn) (snapshot, error) {
	var s snapshot
	var err error
	if s.cpu, err = cpuSnapshot(cfg.Watch); err != nil {
		return s, err
	}
	if s.metrics, s.hasMetrics, err = scrape(ctx, cfg.Metrics); err != nil {
		return s, err
	}
	if db != nil {
		if s.commits, s.rollbacks, err = pgCounters(ctx, db); err != nil {
			return s, err
		}
	}
	return s, nil
}

// measure runs one measure of cfg.Mode.
func measure(ctx context.Context, cfg Config) (Result, error) {
	r := Result{Label: cfg.Label, Round: cfg.Round, Mode: cfg.Mode, Prefix: cfg.Prefix, Conns: cfg.Conns}
	var db *pgx.Conn
	if cfg.DB != "" {
		var err error
		if db, err = connectDB(ctx, cfg.DB); err != nil {
			return r, err
		}
		defer db.Close(context.WithoutCancel(ctx))
	}
	p := newPoster(cfg)
	if cfg.Mode == "replay" {
		if err := createKeys(ctx, cfg, p, db); err != nil {
			return r, err
		}
	}

	before, err := take(ctx, cfg, db)
	if err != nil {
		return r, err
	}
	start := time.Now()
	var outs []outcome
	switch cfg.Mode {
	case "closed":
		outs = closedLoop(ctx, p, cfg.Conns, cfg.Duration, cfg.Requests, sequentialKey(cfg.Prefix))
	case "open":
		outs = openLoop(ctx, p, cfg.Conns, cfg.Rate, cfg.Duration, sequentialKey(cfg.Prefix))
	case "replay":
		outs = closedLoop(ctx, p, cfg.Conns, cfg.Duration, 0, randomKey(cfg.Prefix, cfg.Keys))
	}
	if cfg.Mode != "wait" {
		summarise(&r, outs, time.Since(start))
		r.Commands = r.New
		if cfg.Mode == "replay" {
			r.Commands = r.Replayed
		}
	}
	if r.Requests > 0 && r.Errors == r.Requests {
		return r, fmt.Errorf("none of %d requests to %s got an HTTP answer", r.Requests, cfg.URL)
	}
	if cfg.Mode == "open" {
		r.Open = openStats(outs, cfg)
	}
	// A replay run waited for its keys before the load, in createKeys.
	if cfg.WaitComplete && cfg.Mode != "replay" || cfg.Mode == "wait" {
		want, loadStart := r.New, start
		if cfg.Mode == "wait" {
			want, loadStart = 1, time.Time{}
		}
		if r.Done, err = waitComplete(ctx, db, schemas[cfg.Schema], cfg.Tenant, cfg.Prefix, want, loadStart, cfg.WaitTimeout); err != nil {
			return r, err
		}
		if !r.Done.TimedOut {
			if r.Done.Unsent, err = waitRelayed(ctx, db, schemas[cfg.Schema], cfg.Tenant, cfg.Prefix, 30*time.Second); err != nil {
				r.Warnings = append(r.Warnings, err.Error())
			} else if r.Events, err = eventStats(ctx, db, schemas[cfg.Schema], cfg.Tenant, cfg.Prefix, loadStart); err != nil {
				r.Warnings = append(r.Warnings, err.Error())
			}
		}
		r.Commands = r.Done.Completed
		if cfg.Mode == "wait" {
			r.DurationS = time.Since(start).Seconds()
		}
	}
	after, err := take(ctx, cfg, db)
	if err != nil {
		return r, err
	}
	finish(&r, before, after, db != nil)
	return r, nil
}

// createKeys makes the keys a replay run retries, and waits until their
// commands are completed when it can read the database.
func createKeys(ctx context.Context, cfg Config, p *poster, db *pgx.Conn) error {
	outs := closedLoop(ctx, p, cfg.Conns, 0, cfg.Keys, sequentialKey(cfg.Prefix))
	var setup Result
	summarise(&setup, outs, time.Second)
	if setup.New != cfg.Keys {
		return fmt.Errorf("replay setup: %d of %d keys created (status %v)", setup.New, cfg.Keys, setup.Status)
	}
	if db == nil || !cfg.WaitComplete {
		return nil
	}
	c, err := waitComplete(ctx, db, schemas[cfg.Schema], cfg.Tenant, cfg.Prefix, cfg.Keys, time.Time{}, cfg.WaitTimeout)
	if err != nil {
		return err
	}
	if c.TimedOut {
		return fmt.Errorf("replay setup: %d of %d commands completed within %s", c.Completed, cfg.Keys, cfg.WaitTimeout)
	}
	return nil
}

func openStats(outs []outcome, cfg Config) *OpenStats {
	st := &OpenStats{Rate: cfg.Rate, LateMs: ms(cfg.Late)}
	for _, o := range outs {
		if o.Delay > cfg.Late {
			st.Late++
		}
		st.MaxDelayMs = max(st.MaxDelayMs, ms(o.Delay))
	}
	return st
}

// finish turns the two snapshots into per-command figures and warnings.
func finish(r *Result, before, after snapshot, hasDB bool) {
	if len(after.cpu) > 0 {
		r.CPU = cpuDelta(before.cpu, after.cpu, r.Commands)
	}
	if after.hasMetrics {
		t := &Retries{
			TxRetries: after.metrics[retryMetrics[0]] - before.metrics[retryMetrics[0]],
			TxGaveUp:  after.metrics[retryMetrics[1]] - before.metrics[retryMetrics[1]],
		}
		if r.Commands > 0 {
			t.PerCmd = t.TxRetries / float64(r.Commands)
		}
		r.Retries = t
	}
	if hasDB {
		pg := &PGStats{Commits: after.commits - before.commits, Rollbacks: after.rollbacks - before.rollbacks}
		if r.Commands > 0 {
			pg.RollbackPerC = float64(pg.Rollbacks) / float64(r.Commands)
			pg.CommitPerC = float64(pg.Commits) / float64(r.Commands)
		}
		r.PG = pg
	}
	if r.Errors > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d requests failed without an HTTP answer", r.Errors))
	}
	if o := r.Open; o != nil && o.Late*100 > r.Requests {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d of %d requests left more than %.0f ms after their slot: all %d connections were busy "+
			"(the server fell behind the rate) or the client was starved of CPU; their latency counts from their slot", o.Late, r.Requests, o.LateMs, r.Conns))
	}
	if d := r.Done; d != nil && d.TimedOut {
		r.Warnings = append(r.Warnings, fmt.Sprintf("only %d of %d claims completed before the timeout", d.Completed, d.Claims))
	}
}
