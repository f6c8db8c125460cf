// Package config reads idemgate's settings from the environment.
package config

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/command"
	"github.com/idemgate/idemgate/consumer"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/projector"
	"github.com/idemgate/idemgate/store"
)

// Config is every setting a role may need; each role reads what it uses.
type Config struct {
	// Addr is the API's listen address (IDEMGATE_ADDR): host:port, or
	// fd:N, a listening socket the process inherits (see InheritedFD).
	Addr string
	// DatabaseURL points at CockroachDB or PostgreSQL (DATABASE_URL).
	DatabaseURL string
	// KafkaBrokers are the seed brokers (KAFKA_BROKERS, comma-separated).
	KafkaBrokers []string
	// Kafka is how the clients reach the brokers: TLS, SASL and the
	// producers' compression (KAFKA_TLS*, KAFKA_SASL_*,
	// IDEMGATE_KAFKA_COMPRESSION; see events.KafkaConfig).
	Kafka events.KafkaConfig
	// APIKeys maps API key to tenant (IDEMGATE_API_KEYS="k1=tenant-a,k2=tenant-b").
	APIKeys map[string]string
	// APIKeysFile names a file of more keys (IDEMGATE_API_KEYS_FILE, see
	// ReadAPIKeysFile), possibly hashed.
	APIKeysFile string
	// OperatorKeys maps an operator key of the console to its scope
	// (IDEMGATE_OPERATOR_KEYS="k1=*,k2=tenant-a|tenant-b"); OperatorKeysFile
	// names a file of more (IDEMGATE_OPERATOR_KEYS_FILE), as APIKeysFile.
	// With neither, the console is off.
	OperatorKeys     map[string]string
	OperatorKeysFile string
	// MismatchStatus answers a key reused with another body: 409 (default)
	// or 422 (IDEMGATE_MISMATCH_STATUS).
	MismatchStatus int
	// TopicPrefix names the topics <prefix>.commands etc. (IDEMGATE_TOPIC_PREFIX).
	TopicPrefix string
	// Partitions of topics idemgate creates (IDEMGATE_PARTITIONS).
	Partitions int32
	// TopicReplication is the replication factor of topics idemgate
	// creates (IDEMGATE_TOPIC_REPLICATION); 0 = min(3, brokers).
	TopicReplication int16
	// TopicMinInsync is their min.insync.replicas
	// (IDEMGATE_TOPIC_MIN_INSYNC); 0 = 2 when the replication factor is 3
	// or more, else the broker's default.
	TopicMinInsync int
	// Group is the projectors' consumer group (IDEMGATE_GROUP).
	Group string
	// Lease is how long a claim may wait for its Kafka acknowledgement
	// before the sweeper re-emits it (IDEMGATE_LEASE).
	Lease time.Duration
	// Retention is how long a key is remembered (IDEMGATE_RETENTION).
	Retention time.Duration
	// RetentionByOperation overrides Retention per operation
	// (IDEMGATE_RETENTION_BY_OPERATION="refunds.create=72h,...").
	RetentionByOperation map[string]time.Duration
	// SweepInterval is how often the sweeper looks (IDEMGATE_SWEEP_INTERVAL).
	SweepInterval time.Duration
	// MaxAttempts bounds the attempts at an event that fails permanently
	// before it is dead-lettered (IDEMGATE_MAX_ATTEMPTS). It does not
	// bound upstream calls: CallAttempts and CallRetryFor do.
	MaxAttempts int
	// CallAttempts and CallRetryFor are an upstream call's failure
	// budget: it is given up once it has failed, in an observed way, at
	// least CallAttempts times (IDEMGATE_CALL_ATTEMPTS) and for at least
	// CallRetryFor since its first failure (IDEMGATE_CALL_RETRY_FOR).
	// Attempts cut short by a crash spend neither.
	CallAttempts int
	CallRetryFor time.Duration
	// CallMaxUnfinished is how many attempts at a call in a row may end
	// without an outcome (their process died) before the command is
	// quarantined as outcome unknown (IDEMGATE_CALL_MAX_UNFINISHED).
	CallMaxUnfinished int
	// InstanceID makes a projector a static member of its group
	// (IDEMGATE_INSTANCE_ID; one stable id per process, e.g. the pod
	// name): restarted after a crash, it resumes its partitions at once.
	InstanceID string
	// MetricsAddr, when set, serves /metrics for the project and relay
	// roles (IDEMGATE_METRICS_ADDR; host:port or fd:N as for Addr); the
	// API serves its own.
	MetricsAddr string
	// JanitorInterval is how often expired keys are deleted
	// (IDEMGATE_JANITOR_INTERVAL).
	JanitorInterval time.Duration
	// Routes is the gateway's routes file (IDEMGATE_ROUTES, or --routes).
	Routes string
	// DBTimeout bounds each request's work in the database, connection
	// included: a hung database gets a 503 in this time, not a hang
	// (IDEMGATE_DB_TIMEOUT).
	DBTimeout time.Duration
	// APIPoolSize bounds the API's database connections
	// (IDEMGATE_API_POOL_SIZE).
	APIPoolSize int32
	// ProjectorPoolSize bounds the projector's database connections
	// (IDEMGATE_PROJECTOR_POOL_SIZE): its two group transactions, the
	// upstream calls' bookkeeping of each partition, the result marks.
	ProjectorPoolSize int32
	// ClaimConcurrency is how many claim transactions the API runs at once
	// (IDEMGATE_CLAIM_CONCURRENCY; at most the API's pool); the claims
	// that arrive meanwhile share the next ones (group commit).
	ClaimConcurrency int
	// ClaimSpillAfter is how long a claim transaction runs before the
	// claims behind it may take another slot (IDEMGATE_CLAIM_SPILL_AFTER).
	ClaimSpillAfter time.Duration
	// MaxConnections caps the API's concurrent client connections
	// (IDEMGATE_MAX_CONNECTIONS); past it, new ones wait in the listen
	// queue. It is lowered to leave file handles for the backends.
	MaxConnections int
	// Pprof serves Go's profiles (/debug/pprof/) beside /metrics on
	// IDEMGATE_METRICS_ADDR, behind the metrics token when there is one
	// (IDEMGATE_PPROF=true).
	Pprof bool
	// MetricsToken, when set, is required as "Authorization: Bearer
	// <token>" on /metrics (IDEMGATE_METRICS_TOKEN).
	MetricsToken string
	// LagInterval is how often the projector measures its group's lag
	// (IDEMGATE_LAG_INTERVAL).
	LagInterval time.Duration
	// RelayGrace is how old an unsent outcome must be before the relay
	// publishes it; the projector publishes the younger ones itself
	// (IDEMGATE_RELAY_GRACE, projector.RelayConfig.Grace).
	RelayGrace time.Duration
	// ProjectorPublishes has the projector publish each result event right
	// after its commit (IDEMGATE_PROJECTOR_PUBLISHES, default true); false
	// leaves them all to the relay, after its grace.
	ProjectorPublishes bool
	// UpstreamBackoff is the wait before an upstream call's second attempt;
	// it doubles up to 30 s (IDEMGATE_UPSTREAM_BACKOFF).
	UpstreamBackoff time.Duration
	// LogFormat is text (default) or json (IDEMGATE_LOG_FORMAT);
	// LogLevel is debug, info (default), warn or error
	// (IDEMGATE_LOG_LEVEL).
	LogFormat, LogLevel string
	// DedupWindow is how long the projectors' dedup records are kept
	// (IDEMGATE_DEDUP_WINDOW); it must exceed the commands topic's
	// retention (set to the same window less a day when idemgate creates
	// the topic).
	DedupWindow time.Duration
	// Region names this deployment's region (IDEMGATE_REGION): its serve,
	// project and relay, with their own Kafka, share one database with the
	// other regions (docs/MULTI-REGION.md). A short lowercase name (see
	// ValidRegion); on CockroachDB multi-region, the cluster's name for the
	// region (e.g. europe-west1).
	Region string
	// HomeRegion is the home region of tenants TenantRegions does not name
	// (IDEMGATE_HOME_REGION; "" for Region: see Home), and the database's primary
	// region in the multi-region migration set.
	HomeRegion string
	// TenantRegions gives tenants their home region
	// (IDEMGATE_TENANT_REGIONS="tenant-a=eu,tenant-b=us"): on CockroachDB
	// multi-region, the region where their claims live.
	TenantRegions map[string]string
	// Regions are every region of the database
	// (IDEMGATE_REGIONS="eu,us"; default: Home, Region and those of
	// TenantRegions: see AllRegions), added to the database by the multi-region migration
	// set.
	Regions []string
	// Migrations selects an extra migration set (IDEMGATE_MIGRATIONS):
	// "" (default) for none, "crdb-multiregion" for CockroachDB's
	// multi-region DDL (store.MultiRegionMigrations). It is never applied
	// unless set here.
	Migrations string
}

// MigrationsMultiRegion is the IDEMGATE_MIGRATIONS value that selects
// CockroachDB's multi-region migration set.
const MigrationsMultiRegion = "crdb-multiregion"

// DefaultRegion is IDEMGATE_REGION when unset: one region, on its own.
const DefaultRegion = "local"

// Defaults returns the settings used where the environment is silent.
// Each default is written once: here, with its reason, or as the Default*
// constant of the package that uses it (whose New falls back to the same
// constant), where the reason is given.
func Defaults() Config {
	return Config{
		// Loopback: a fresh install is not reachable from the network
		// until someone says so.
		Addr:           "127.0.0.1:8080",
		MismatchStatus: command.DefaultMismatchStatus,
		TopicPrefix:    events.DefaultTopicPrefix,
		// Six partitions: up to six projectors share the work, and a
		// partition, the unit of ordering, holds back a sixth of it when
		// one command is slow.
		Partitions: 6,
		Group:      "idemgate-projector",
		Lease:      store.DefaultLease,
		Retention:  idemgate.DefaultRetention,
		// Automatic (0): min(3, the brokers in the cluster), counted when
		// the topics are created. Three copies survive the loss of a
		// broker with a majority left; fewer brokers cannot hold more.
		TopicReplication: 0,
		// Automatic (0): 2 with three copies or more, so an acknowledged
		// (acks=all) event is on two brokers and survives the loss of its
		// leader, while one broker down still leaves writes possible.
		TopicMinInsync: 0,
		// A second: a claim's lease (store.DefaultLease) is re-emitted at
		// most a second late, at the cost of one indexed query a second.
		SweepInterval: time.Second,
		// A minute: keys past their retention may linger a minute more,
		// and each pass deletes a minute's worth of them.
		JanitorInterval:   time.Minute,
		MaxAttempts:       consumer.DefaultMaxAttempts,
		CallAttempts:      projector.DefaultCallFailures,
		CallRetryFor:      projector.DefaultCallRetryFor,
		CallMaxUnfinished: projector.DefaultMaxUnfinished,
		DBTimeout:         command.DefaultDBTimeout,
		// Eight connections for an API process's claims and reads: twice
		// its claim transactions (command.DefaultClaimConcurrency), so
		// reads find one while claims run. (The emitter, the sweeper and
		// the janitor have a pool of their own.)
		APIPoolSize:       8,
		ProjectorPoolSize: 8,
		ClaimConcurrency:  command.DefaultClaimConcurrency,
		ClaimSpillAfter:   command.DefaultClaimSpillAfter,
		// 4096 client connections: past it new ones wait in the listen
		// queue rather than exhaust file handles (it is lowered to leave
		// handles for the backends).
		MaxConnections: 4096,
		LagInterval:    consumer.DefaultLagInterval,
		RelayGrace:     projector.DefaultRelayGrace,
		// The relay is the safety net of the projector's publish.
		ProjectorPublishes: true,
		// Eight days: the commands topic keeps a week (the window less a
		// day, when idemgate creates it), and a dedup record must outlive
		// every copy of its event there, with a day of margin.
		DedupWindow:     8 * 24 * time.Hour,
		UpstreamBackoff: projector.DefaultCallBackoff,
		Region:          DefaultRegion,
	}
}

// FromEnv reads the settings through getenv over the defaults.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Defaults()
	var errs []error
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q is not a positive duration such as 10s", name, v))
				return
			}
			*dst = d
		}
	}
	str("IDEMGATE_ADDR", &c.Addr)
	str("DATABASE_URL", &c.DatabaseURL)
	str("IDEMGATE_TOPIC_PREFIX", &c.TopicPrefix)
	str("IDEMGATE_GROUP", &c.Group)
	str("IDEMGATE_METRICS_ADDR", &c.MetricsAddr)
	str("IDEMGATE_INSTANCE_ID", &c.InstanceID)
	str("IDEMGATE_ROUTES", &c.Routes)
	str("IDEMGATE_METRICS_TOKEN", &c.MetricsToken)
	str("IDEMGATE_LOG_FORMAT", &c.LogFormat)
	str("IDEMGATE_LOG_LEVEL", &c.LogLevel)
	str("IDEMGATE_API_KEYS_FILE", &c.APIKeysFile)
	str("IDEMGATE_OPERATOR_KEYS_FILE", &c.OperatorKeysFile)
	if v := strings.TrimSpace(getenv("IDEMGATE_MAX_ATTEMPTS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			errs = append(errs, fmt.Errorf("IDEMGATE_MAX_ATTEMPTS=%q is not a number from 1 to 100", v))
		}
		c.MaxAttempts = n
	}
	if v := strings.TrimSpace(getenv("KAFKA_BROKERS")); v != "" {
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.KafkaBrokers = append(c.KafkaBrokers, b)
			}
		}
	}
	kafka, kafkaErrs := kafkaFromEnv(getenv)
	c.Kafka, errs = kafka, append(errs, kafkaErrs...)
	if v := getenv("IDEMGATE_API_KEYS"); strings.TrimSpace(v) != "" {
		keys, err := ParseAPIKeys(v)
		if err != nil {
			errs = append(errs, err)
		}
		c.APIKeys = keys
	}
	if v := getenv("IDEMGATE_OPERATOR_KEYS"); strings.TrimSpace(v) != "" {
		keys, err := ParseOperatorKeys(v)
		if err != nil {
			errs = append(errs, err)
		}
		c.OperatorKeys = keys
	}
	if v := strings.TrimSpace(getenv("IDEMGATE_MISMATCH_STATUS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("IDEMGATE_MISMATCH_STATUS=%q is not 409 or 422", v))
		}
		c.MismatchStatus = n
	}
	if v := strings.TrimSpace(getenv("IDEMGATE_PARTITIONS")); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("IDEMGATE_PARTITIONS=%q is not a number", v))
		}
		c.Partitions = int32(n)
	}
	dur("IDEMGATE_LEASE", &c.Lease)
	dur("IDEMGATE_RETENTION", &c.Retention)
	dur("IDEMGATE_SWEEP_INTERVAL", &c.SweepInterval)
	dur("IDEMGATE_JANITOR_INTERVAL", &c.JanitorInterval)
	dur("IDEMGATE_DB_TIMEOUT", &c.DBTimeout)
	dur("IDEMGATE_CLAIM_SPILL_AFTER", &c.ClaimSpillAfter)
	dur("IDEMGATE_LAG_INTERVAL", &c.LagInterval)
	dur("IDEMGATE_RELAY_GRACE", &c.RelayGrace)
	dur("IDEMGATE_DEDUP_WINDOW", &c.DedupWindow)
	dur("IDEMGATE_UPSTREAM_BACKOFF", &c.UpstreamBackoff)
	dur("IDEMGATE_CALL_RETRY_FOR", &c.CallRetryFor)
	num := func(name string, min, max int, dst func(int)) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < min || n > max {
				errs = append(errs, fmt.Errorf("%s=%q is not a number from %d to %d", name, v, min, max))
				return
			}
			dst(n)
		}
	}
	num("IDEMGATE_API_POOL_SIZE", 1, 1000, func(n int) { c.APIPoolSize = int32(n) })
	num("IDEMGATE_PROJECTOR_POOL_SIZE", 1, 1000, func(n int) { c.ProjectorPoolSize = int32(n) })
	num("IDEMGATE_TOPIC_REPLICATION", 0, 1000, func(n int) { c.TopicReplication = int16(n) })
	num("IDEMGATE_TOPIC_MIN_INSYNC", 0, 1000, func(n int) { c.TopicMinInsync = n })
	num("IDEMGATE_MAX_CONNECTIONS", 16, 1_000_000, func(n int) { c.MaxConnections = n })
	num("IDEMGATE_CLAIM_CONCURRENCY", 1, 1000, func(n int) { c.ClaimConcurrency = n })
	num("IDEMGATE_CALL_ATTEMPTS", 1, 1000, func(n int) { c.CallAttempts = n })
	num("IDEMGATE_CALL_MAX_UNFINISHED", 1, 1000, func(n int) { c.CallMaxUnfinished = n })
	if v := strings.TrimSpace(getenv("IDEMGATE_PROJECTOR_PUBLISHES")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("IDEMGATE_PROJECTOR_PUBLISHES=%q is not true or false", v))
		}
		c.ProjectorPublishes = b
	}
	if v := strings.TrimSpace(getenv("IDEMGATE_PPROF")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("IDEMGATE_PPROF=%q is not true or false", v))
		}
		c.Pprof = b
	}
	if v := strings.TrimSpace(getenv("IDEMGATE_RETENTION_BY_OPERATION")); v != "" {
		c.RetentionByOperation = map[string]time.Duration{}
		for _, pair := range strings.Split(v, ",") {
			op, d, ok := strings.Cut(strings.TrimSpace(pair), "=")
			dd, err := time.ParseDuration(strings.TrimSpace(d))
			if !ok || op == "" || err != nil || dd <= 0 {
				errs = append(errs, fmt.Errorf("IDEMGATE_RETENTION_BY_OPERATION: %q is not operation=duration", pair))
				continue
			}
			c.RetentionByOperation[strings.TrimSpace(op)] = dd
		}
	}
	str("IDEMGATE_REGION", &c.Region)
	str("IDEMGATE_HOME_REGION", &c.HomeRegion)
	str("IDEMGATE_MIGRATIONS", &c.Migrations)
	if v := strings.TrimSpace(getenv("IDEMGATE_TENANT_REGIONS")); v != "" {
		m, err := ParseTenantRegions(v)
		if err != nil {
			errs = append(errs, err)
		}
		c.TenantRegions = m
	}
	if v := strings.TrimSpace(getenv("IDEMGATE_REGIONS")); v != "" {
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				c.Regions = append(c.Regions, r)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// ParseTenantRegions reads "tenant-a=eu,tenant-b=us".
func ParseTenantRegions(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		tenant, region, ok := strings.Cut(pair, "=")
		tenant, region = strings.TrimSpace(tenant), strings.TrimSpace(region)
		if !ok || tenant == "" || region == "" {
			return nil, fmt.Errorf("IDEMGATE_TENANT_REGIONS: %q is not tenant=region", pair)
		}
		if _, dup := out[tenant]; dup {
			return nil, fmt.Errorf("IDEMGATE_TENANT_REGIONS: tenant %q listed twice", tenant)
		}
		out[tenant] = region
	}
	return out, nil
}

// ValidRegion reports whether name is a region name: 1 to 32 characters,
// lowercase letters, digits and '-', starting with a letter (CockroachDB's
// region names, such as us-east1, are of this form).
func ValidRegion(name string) bool {
	if name == "" || len(name) > 32 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// HomeOf is tenant's home region.
func (c Config) HomeOf(tenant string) string {
	if r, ok := c.TenantRegions[tenant]; ok {
		return r
	}
	return c.Home()
}

// Home is HomeRegion, or Region when it is unset.
func (c Config) Home() string {
	if c.HomeRegion == "" {
		return c.Region
	}
	return c.HomeRegion
}

// AllRegions are the database's regions: Home, then Regions when set,
// else Region and those of TenantRegions; sorted, HomeRegion first.
func (c Config) AllRegions() []string {
	seen := map[string]bool{}
	var out []string
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	add(c.Home())
	rest := append([]string{}, c.Regions...)
	if len(c.Regions) == 0 {
		rest = append(rest, c.Region)
		for _, r := range c.TenantRegions {
			rest = append(rest, r)
		}
	}
	sort.Strings(rest)
	for _, r := range rest {
		add(r)
	}
	return out
}

// validateRegions checks the region settings.
func (c Config) validateRegions() error {
	if !ValidRegion(c.Region) {
		return fmt.Errorf("IDEMGATE_REGION=%q is not a region name (1 to 32 of a-z, 0-9 and '-', starting with a letter)", c.Region)
	}
	home := c.Home()
	if !ValidRegion(home) {
		return fmt.Errorf("IDEMGATE_HOME_REGION=%q is not a region name", home)
	}
	for tenant, r := range c.TenantRegions {
		if !ValidRegion(r) {
			return fmt.Errorf("IDEMGATE_TENANT_REGIONS: %s=%q is not a region name", tenant, r)
		}
	}
	for _, r := range c.Regions {
		if !ValidRegion(r) {
			return fmt.Errorf("IDEMGATE_REGIONS: %q is not a region name", r)
		}
	}
	if len(c.Regions) > 0 {
		listed := map[string]bool{}
		for _, r := range c.Regions {
			listed[r] = true
		}
		for _, r := range append(c.AllRegionsNamed(), home) {
			if !listed[r] {
				return fmt.Errorf("IDEMGATE_REGIONS=%s does not list region %q, which IDEMGATE_REGION, IDEMGATE_HOME_REGION or IDEMGATE_TENANT_REGIONS names",
					strings.Join(c.Regions, ","), r)
			}
		}
	}
	switch c.Migrations {
	case "", MigrationsMultiRegion:
	default:
		return fmt.Errorf("IDEMGATE_MIGRATIONS=%q is not %q or empty", c.Migrations, MigrationsMultiRegion)
	}
	return nil
}

// AllRegionsNamed are the regions IDEMGATE_REGION and
// IDEMGATE_TENANT_REGIONS name.
func (c Config) AllRegionsNamed() []string {
	out := []string{c.Region}
	for _, r := range c.TenantRegions {
		out = append(out, r)
	}
	return out
}

// Validate checks the settings that do not depend on the role.
func (c Config) Validate() error {
	if err := validListenAddr(c.Addr); err != nil {
		return fmt.Errorf("IDEMGATE_ADDR=%q is %w", c.Addr, err)
	}
	if c.MetricsAddr != "" {
		if err := validListenAddr(c.MetricsAddr); err != nil {
			return fmt.Errorf("IDEMGATE_METRICS_ADDR=%q is %w", c.MetricsAddr, err)
		}
	}
	if c.MismatchStatus != 409 && c.MismatchStatus != 422 {
		return fmt.Errorf("IDEMGATE_MISMATCH_STATUS must be 409 or 422, not %d", c.MismatchStatus)
	}
	if c.Partitions < 1 || c.Partitions > 1000 {
		return fmt.Errorf("IDEMGATE_PARTITIONS must be 1 to 1000, not %d", c.Partitions)
	}
	if c.TopicReplication > 0 && c.TopicMinInsync > int(c.TopicReplication) {
		return fmt.Errorf("IDEMGATE_TOPIC_MIN_INSYNC=%d exceeds IDEMGATE_TOPIC_REPLICATION=%d: no acks=all write could succeed",
			c.TopicMinInsync, c.TopicReplication)
	}
	if c.DedupWindow < 2*24*time.Hour {
		return fmt.Errorf("IDEMGATE_DEDUP_WINDOW must be at least 48h (a day of topic retention and a day of margin), not %s", c.DedupWindow)
	}
	if strings.ContainsAny(c.TopicPrefix, " /") {
		return fmt.Errorf("IDEMGATE_TOPIC_PREFIX=%q may not contain spaces or '/'", c.TopicPrefix)
	}
	if err := c.validateRegions(); err != nil {
		return err
	}
	return c.Kafka.Validate()
}

// InheritedFD reads a listen address of the form fd:N: a socket already
// listening that the process inherited as file descriptor N (N > 2), from
// a supervisor that keeps the port open while the process restarts
// (systemd's socket activation, a test). The process never binds such an
// address, so no other process can take the port in between.
func InheritedFD(addr string) (fd int, ok bool, err error) {
	n, ok := strings.CutPrefix(addr, "fd:")
	if !ok {
		return 0, false, nil
	}
	fd, err = strconv.Atoi(n)
	if err != nil || fd < 3 {
		return 0, true, errors.New("not fd:N with N a file descriptor above 2")
	}
	return fd, true, nil
}

func validListenAddr(addr string) error {
	if _, ok, err := InheritedFD(addr); ok {
		return err
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return errors.New("not host:port (nor fd:N, an inherited socket)")
	}
	return nil
}
