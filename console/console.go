// Package console is the operator console: server-rendered HTML pages
// (html/template, every asset embedded, no script) under /console/ on
// serve's address, for the people who answer "was my customer charged
// twice?". It shows the overview of the pipeline, the operations with
// their filters, one operation's timeline, a key lookup, and drives a
// dead-lettered or outcome-unknown command again as `idemgate redrive`
// does.
//
// Access: an operator key (IDEMGATE_OPERATOR_KEYS) of scope "*" or some
// tenants logs in at /console/login; its session cookie is HttpOnly,
// SameSite=Strict, Secure behind TLS; every POST carries the session's
// CSRF token; failed logins are rate-limited; every page and action is
// held to the key's tenants; every action writes an audit log line with
// the key's name (config.KeyName).
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/consumer"
	"github.com/idemgate/idemgate/health"
	"github.com/idemgate/idemgate/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// Config is what the console needs.
type Config struct {
	Store *store.Store
	// Keys are the operator keys' hashes with their scopes
	// (config.Config.OperatorKeyHashes).
	Keys map[config.KeyHash]config.OperatorScope
	// Projector names the projectors' dedup records (roles.ProjectorName),
	// which a redrive removes.
	Projector string
	// Registry lists the operations, for the filters and the lookup.
	Registry *idemgate.Registry
	// Dependencies are shown with their health on the overview.
	Dependencies []health.Dependency
	// Lag measures the consumer group's lag per partition; nil: not shown.
	Lag    func(ctx context.Context) ([]consumer.PartitionLag, error)
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
	// SessionTTL bounds a session (DefaultSessionTTL).
	SessionTTL time.Duration
	// Login limits failed logins per client (DefaultLoginLimit).
	Login LoginLimit
}

// DefaultSessionTTL is how long a session lasts: an operator's shift.
const DefaultSessionTTL = 8 * time.Hour

// Console serves the pages.
type Console struct {
	cfg      Config
	pages    map[string]*template.Template
	sessions *sessions
	limiter  *loginLimiter
	assets   http.Handler
}

// New builds the console; it refuses a configuration without operator keys.
func New(cfg Config) (*Console, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("console: no operator key (IDEMGATE_OPERATOR_KEYS)")
	}
	if cfg.Store == nil || cfg.Registry == nil {
		return nil, errors.New("console: a store and a registry are needed")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Login == (LoginLimit{}) {
		cfg.Login = DefaultLoginLimit
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return nil, err
	}
	return &Console{cfg: cfg, pages: pages, sessions: newSessions(cfg.Now, cfg.SessionTTL),
		limiter: newLoginLimiter(cfg.Login, cfg.Now), assets: http.StripPrefix(Prefix+"assets/", http.FileServerFS(sub))}, nil
}

// Handler serves the console's routes, all under Prefix.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, Prefix, http.StatusSeeOther) })
	mux.HandleFunc("GET /console/{$}", c.page(c.overview))
	mux.HandleFunc("GET /console/login", c.loginForm)
	mux.HandleFunc("POST /console/login", c.login)
	mux.HandleFunc("POST /console/logout", c.action(c.logout))
	mux.HandleFunc("GET /console/operations", c.page(c.operations))
	mux.HandleFunc("GET /console/operations/{id}", c.page(c.operation))
	mux.HandleFunc("GET /console/operations/{id}/redrive", c.page(c.confirmRedrive))
	mux.HandleFunc("POST /console/operations/{id}/redrive", c.action(c.redrive))
	mux.HandleFunc("GET /console/lookup", c.page(c.lookup))
	mux.Handle("GET /console/assets/{file}", c.assets)
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", nil, errorPage{Title: "Not found", Message: "No such page."})
	})
	return securityHeaders(mux)
}

// securityHeaders: nothing is loaded from elsewhere, nothing runs (the
// pages have no script), nothing frames the console, nothing is cached.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// audit writes one line for an operator's action.
func (c *Console) audit(ctx context.Context, s *session, action string, attrs ...any) {
	c.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "console audit", append([]slog.Attr{
		slog.String("action", action), slog.String("operator", s.name), slog.String("scope", s.scope.String()),
	}, argsToAttrs(attrs)...)...)
}

func argsToAttrs(args []any) []slog.Attr {
	var out []slog.Attr
	for i := 0; i+1 < len(args); i += 2 {
		out = append(out, slog.Any(fmt.Sprint(args[i]), args[i+1]))
	}
	return out
}

// tenants is what a scope gives the store's filters: nil for every tenant.
func tenants(sc config.OperatorScope) []string {
	if sc.All {
		return nil
	}
	return sc.Tenants
}
