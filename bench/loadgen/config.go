package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config is one load generator run. The zero value is not usable: start
// from defaults() and Validate() it.
type Config struct {
	Mode     string        // closed, open, replay, wait or hog
	Schema   string        // whose tables the SQL reads: idemgate or syncoutbox
	Share    float64       // hog: the share of one core it burns
	URL      string        // base URL of the API, loopback only
	APIKey   string        // sent as Authorization: Bearer
	Tenant   string        // the tenant APIKey maps to, for the SQL reads
	Conns    int           // connections (closed: workers; open: most requests in flight)
	Duration time.Duration // how long the load runs
	Requests int           // closed: stop after this many requests instead of Duration
	Rate     float64       // open: requests per second
	Late     time.Duration // open: a request sent later than this after its slot is late
	Keys     int           // replay: keys created before they are retried at random
	Prefix   string        // every Idempotency-Key of the run starts with Prefix + "-"

	DB           string        // optional database URL: pg_stat_database deltas, and the claims
	WaitComplete bool          // wait until the run's claims are COMPLETED (needs DB)
	WaitTimeout  time.Duration // how long to wait for completion
	Watch        []proc        // processes whose CPU time is measured
	Metrics      []target      // /metrics endpoints scraped for transaction retries

	Label string // echoed in the JSON result, e.g. "idemgate.e2e"
	Round int    // echoed in the JSON result
}

// proc is a process whose CPU time is read from /proc, with its children
// (PostgreSQL: the postmaster's backends) when Children is set.
type proc struct {
	Name     string
	PID      int
	Children bool
}

// target is a named Prometheus endpoint.
type target struct {
	Name string
	URL  string
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9.-]{1,100}$`)

func defaults() Config {
	return Config{
		Mode:        "closed",
		Schema:      "idemgate",
		Share:       0.5,
		URL:         "http://127.0.0.1:8080",
		APIKey:      "bench-key",
		Tenant:      "tenant-bench",
		Conns:       32,
		Duration:    10 * time.Second,
		Late:        10 * time.Millisecond,
		Keys:        1000,
		Prefix:      fmt.Sprintf("lg%d", time.Now().UnixNano()),
		WaitTimeout: 180 * time.Second,
	}
}

// parseConfig reads the command line into a validated Config.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	c := defaults()
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Mode, "mode", c.Mode, "closed | open | replay | wait | hog")
	fs.StringVar(&c.Schema, "schema", c.Schema, "whose tables -db holds: idemgate | syncoutbox")
	fs.Float64Var(&c.Share, "share", c.Share, "hog: share of one core to burn, (0, 1]")
	fs.StringVar(&c.URL, "url", c.URL, "base URL of the API (loopback only)")
	fs.StringVar(&c.APIKey, "key", c.APIKey, "API key (Authorization: Bearer)")
	fs.StringVar(&c.Tenant, "tenant", c.Tenant, "tenant of the API key (for the SQL reads)")
	fs.IntVar(&c.Conns, "conns", c.Conns, "connections")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "duration of the load")
	fs.IntVar(&c.Requests, "requests", c.Requests, "closed: stop after this many requests (0: run for -duration)")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "open: requests per second")
	fs.DurationVar(&c.Late, "late", c.Late, "open: a request sent later than this after its slot counts as late")
	fs.IntVar(&c.Keys, "keys", c.Keys, "replay: keys created first, then retried at random")
	fs.StringVar(&c.Prefix, "prefix", c.Prefix, "Idempotency-Key prefix of this run ([A-Za-z0-9.-])")
	fs.StringVar(&c.DB, "db", c.DB, "database URL (optional): pg_stat_database deltas and claim reads")
	fs.BoolVar(&c.WaitComplete, "wait-complete", c.WaitComplete, "wait until the run's claims are COMPLETED (needs -db)")
	fs.DurationVar(&c.WaitTimeout, "wait-timeout", c.WaitTimeout, "longest wait for completion")
	watch := fs.String("watch", "", "CPU of processes: name=pid[+],... (+: with its children)")
	metrics := fs.String("metrics", "", "Prometheus endpoints: name=url,...")
	fs.StringVar(&c.Label, "label", c.Label, "label echoed in the JSON result")
	fs.IntVar(&c.Round, "round", c.Round, "round echoed in the JSON result")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.Watch, err = parseWatch(*watch); err != nil {
		return Config{}, err
	}
	if c.Metrics, err = parseTargets(*metrics); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate checks the settings, including that every address is on the
// loopback interface: the harness never sends traffic off the machine.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case "closed", "open", "replay", "wait", "hog":
	default:
		errs = append(errs, fmt.Errorf("-mode %q is not closed, open, replay, wait or hog", c.Mode))
	}
	if _, ok := schemas[c.Schema]; !ok {
		errs = append(errs, fmt.Errorf("-schema %q is not idemgate or syncoutbox", c.Schema))
	}
	if c.Mode == "hog" && (c.Share <= 0 || c.Share > 1) {
		errs = append(errs, fmt.Errorf("-share %g is not in (0, 1]", c.Share))
	}
	if err := loopbackURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("-url: %w", err))
	}
	for _, t := range c.Metrics {
		if err := loopbackURL(t.URL); err != nil {
			errs = append(errs, fmt.Errorf("-metrics %s: %w", t.Name, err))
		}
	}
	if c.Conns < 1 || c.Conns > 4096 {
		errs = append(errs, fmt.Errorf("-conns %d is not 1 to 4096", c.Conns))
	}
	if c.Duration <= 0 && c.Requests <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if c.Requests < 0 {
		errs = append(errs, errors.New("-requests may not be negative"))
	}
	if c.Mode == "open" && (c.Rate <= 0 || c.Rate > 1e6) {
		errs = append(errs, fmt.Errorf("-rate %g is not in (0, 1e6]", c.Rate))
	}
	if c.Mode == "replay" && c.Keys < 1 {
		errs = append(errs, errors.New("-keys must be at least 1"))
	}
	if !prefixRE.MatchString(c.Prefix) {
		errs = append(errs, fmt.Errorf("-prefix %q: use 1 to 100 of [A-Za-z0-9.-]", c.Prefix))
	}
	if (c.WaitComplete || c.Mode == "wait") && c.DB == "" {
		errs = append(errs, errors.New("-wait-complete and -mode wait need -db"))
	}
	if c.DB != "" {
		if err := loopbackDB(c.DB); err != nil {
			errs = append(errs, fmt.Errorf("-db: %w", err))
		}
	}
	return errors.Join(errs...)
}

func loopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return fmt.Errorf("%q: only http:// is supported", raw)
	}
	return loopbackHost(u.Hostname())
}

func loopbackDB(raw string) error {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return err
	}
	if strings.HasPrefix(cfg.Host, "/") {
		return nil // a unix socket
	}
	return loopbackHost(cfg.Host)
}

func loopbackHost(host string) error {
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q is not a loopback address", host)
}

func parseWatch(s string) ([]proc, error) {
	var out []proc
	for _, kv := range splitList(s) {
		name, v, ok := strings.Cut(kv, "=")
		children := strings.HasSuffix(v, "+")
		pid, err := strconv.Atoi(strings.TrimSuffix(v, "+"))
		if !ok || name == "" || err != nil || pid <= 0 {
			return nil, fmt.Errorf("-watch: %q is not name=pid or name=pid+", kv)
		}
		out = append(out, proc{Name: name, PID: pid, Children: children})
	}
	return out, nil
}

func parseTargets(s string) ([]target, error) {
	var out []target
	for _, kv := range splitList(s) {
		name, u, ok := strings.Cut(kv, "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("-metrics: %q is not name=url", kv)
		}
		out = append(out, target{Name: name, URL: u})
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
