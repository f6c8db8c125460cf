package client

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Defaults of Config: what a zero field means.
const (
	DefaultMaxAttempts    = 10
	DefaultMaxElapsed     = time.Minute
	DefaultBaseBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	DefaultWait           = 10 * time.Second
	DefaultPollInterval   = time.Second
	DefaultMaxAwait       = 2 * time.Minute
	DefaultAttemptTimeout = 30 * time.Second
	// MaxWait is the longest Prefer: wait the server honours.
	MaxWait = 30 * time.Second
)

// Config configures a Client. Zero fields take the defaults named on them;
// New applies them and calls Validate.
type Config struct {
	// BaseURL is where idemgate listens, e.g. "http://127.0.0.1:8080"; a
	// path prefix is kept ("https://api.example.com/idemgate"). Required.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <APIKey>"; it selects the
	// tenant, which scopes the idempotency keys. Required.
	APIKey string
	// HTTPClient sends the requests; default a new http.Client with no
	// overall timeout (AttemptTimeout bounds each attempt instead). A
	// client with its own Timeout must allow for Wait.
	HTTPClient *http.Client
	// Retry says how failures of the infrastructure are retried.
	Retry RetryPolicy
	// Wait is sent as "Prefer: wait=N" on commands: the server holds the
	// answer up to that long (whole seconds, at most MaxWait) for the
	// outcome, which saves polling. Default DefaultWait; a negative value
	// sends no Prefer header (the SDK then polls at once).
	Wait time.Duration
	// PollInterval is the delay between polls of a pending operation when
	// the server gives no Retry-After. Default DefaultPollInterval.
	PollInterval time.Duration
	// MaxAwait bounds how long a call waits for a pending command's
	// outcome, polls included, before it returns an IncompleteError with
	// ErrStillPending. Default DefaultMaxAwait; the context may end it
	// sooner.
	MaxAwait time.Duration
	// AttemptTimeout bounds one HTTP attempt (plus Wait for a command):
	// a server that stops answering mid-request is then retried like a
	// broken connection. Default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// UserAgent is sent as User-Agent; default "idemgate-go-client".
	UserAgent string
	// Logger receives one debug line per retry; default: discarded.
	Logger *slog.Logger
}

// RetryPolicy bounds the retries of one request: the first attempt and its
// repetitions after transport failures or 429/502/503/504 answers that are
// not recorded outcomes (see the package documentation).
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included; 1 disables
	// retries. Default DefaultMaxAttempts.
	MaxAttempts int
	// MaxElapsed bounds the time from the first attempt to the start of
	// the last one; a retry that would start later (a long Retry-After)
	// is not made. Default DefaultMaxElapsed.
	MaxElapsed time.Duration
	// BaseBackoff is the ceiling of the first retry's random delay; it
	// doubles at each retry up to MaxBackoff. Default DefaultBaseBackoff.
	BaseBackoff time.Duration
	// MaxBackoff caps the ceiling of the random delay (a Retry-After may
	// still ask for longer). Default DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// WithDefaults returns cfg with every zero field set to its default.
func (cfg Config) WithDefaults() Config {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	cfg.Retry = cfg.Retry.WithDefaults()
	cfg.Wait = cmp.Or(cfg.Wait, DefaultWait)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, DefaultPollInterval)
	cfg.MaxAwait = cmp.Or(cfg.MaxAwait, DefaultMaxAwait)
	cfg.AttemptTimeout = cmp.Or(cfg.AttemptTimeout, DefaultAttemptTimeout)
	cfg.UserAgent = cmp.Or(cfg.UserAgent, "idemgate-go-client")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// WithDefaults returns p with every zero field set to its default.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	p.MaxAttempts = cmp.Or(p.MaxAttempts, DefaultMaxAttempts)
	p.MaxElapsed = cmp.Or(p.MaxElapsed, DefaultMaxElapsed)
	p.BaseBackoff = cmp.Or(p.BaseBackoff, DefaultBaseBackoff)
	p.MaxBackoff = cmp.Or(p.MaxBackoff, DefaultMaxBackoff)
	return p
}

// Validate reports settings that cannot work. It expects the defaults
// applied (WithDefaults), as New does.
func (cfg Config) Validate() error {
	var errs []error
	if cfg.BaseURL == "" {
		errs = append(errs, errors.New("BaseURL is required"))
	} else if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("BaseURL %q is not an absolute http(s) URL", cfg.BaseURL))
	}
	if cfg.APIKey == "" {
		errs = append(errs, errors.New("APIKey is required"))
	}
	if cfg.Wait > MaxWait {
		errs = append(errs, fmt.Errorf("Config.Wait %s exceeds the server's maximum %s", cfg.Wait, MaxWait))
	}
	if cfg.PollInterval < 0 {
		errs = append(errs, errors.New("PollInterval must not be negative"))
	}
	if cfg.MaxAwait < 0 {
		errs = append(errs, errors.New("MaxAwait must not be negative"))
	}
	if cfg.AttemptTimeout < 0 {
		errs = append(errs, errors.New("AttemptTimeout must not be negative"))
	}
	if err := cfg.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	return nil
}

// Validate reports a policy that cannot work (after WithDefaults).
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.MaxAttempts < 1 {
		errs = append(errs, errors.New("Retry.MaxAttempts must be at least 1"))
	}
	if p.MaxElapsed < 0 || p.BaseBackoff < 0 || p.MaxBackoff < 0 {
		errs = append(errs, errors.New("Retry.MaxElapsed, Retry.BaseBackoff and Retry.MaxBackoff must not be negative"))
	}
	if p.MaxBackoff < p.BaseBackoff {
		errs = append(errs, fmt.Errorf("Retry.MaxBackoff %s is below Retry.BaseBackoff %s", p.MaxBackoff, p.BaseBackoff))
	}
	return errors.Join(errs...)
}
