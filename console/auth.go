package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/idemgate/idemgate/config"
)

const (
	sessionCookie = "idemgate_console"
	// loginCookie carries the login form's CSRF token (double submit):
	// the login POST has no session yet to hold one.
	loginCookie = "idemgate_console_login"
	csrfField   = "csrf"
)

// session is one operator's login.
type session struct {
	id      string
	name    string // config.KeyName of the key
	scope   config.OperatorScope
	csrf    string
	expires time.Time
}

// sessions are kept in the process: behind several serve processes, the
// load balancer keeps an operator on one (or the operator logs in again).
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	now func() time.Time
	ttl time.Duration
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{m: map[string]*session{}, now: now, ttl: ttl}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ss *sessions) create(name string, scope config.OperatorScope) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for id, s := range ss.m { // forget the expired ones
		if now.After(s.expires) {
			delete(ss.m, id)
		}
	}
	s := &session{id: randomToken(), name: name, scope: scope, csrf: randomToken(), expires: now.Add(ss.ttl)}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil || ss.now().After(s.expires) {
		delete(ss.m, id)
		return nil
	}
	return s
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// validCSRF compares a submitted token with the expected one in constant
// time; an empty token is never valid.
func validCSRF(expected, got string) bool {
	return expected != "" && got != "" && subtle.ConstantTimeCompare([]byte(expected), []byte(got)) == 1
}

// secure says whether the request came over TLS, to this process or to a
// proxy in front of it (X-Forwarded-Proto), so that the cookies are
// marked Secure.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
}

func (c *Console) sessionOf(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return c.sessions.get(ck.Value)
}

// page wraps a GET page: without a session it redirects to the login,
// which comes back here.
func (c *Console) page(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.sessionOf(r)
		if s == nil {
			http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// action wraps a POST: it needs a session and that session's CSRF token
// in the form, else 403.
func (c *Console) action(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		s := c.sessionOf(r)
		if s == nil || r.ParseForm() != nil || !validCSRF(s.csrf, r.PostFormValue(csrfField)) {
			c.forbidden(w, r, s)
			return
		}
		h(w, r, s)
	}
}

func (c *Console) forbidden(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, http.StatusForbidden, "error", s, errorPage{Title: "Forbidden",
		Message: "This form has expired or did not come from the console (no valid CSRF token). Go back, reload the page and try again."})
}

// safeNext keeps a redirect after login inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

type loginPage struct {
	Next, Token, Error string
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if c.sessionOf(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, http.StatusOK, safeNext(r.URL.Query().Get("next")), "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	token := randomToken()
	setCookie(w, r, loginCookie, token, 3600)
	c.render(w, r, status, "login", nil, loginPage{Next: next, Token: token, Error: msg})
}

// login checks the key of the form: 303 to the page asked for, with a
// session cookie. A POST without the login form's token is refused
// (403); a client with too many failed logins waits (429).
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ck, err := r.Cookie(loginCookie)
	if err != nil || r.ParseForm() != nil || !validCSRF(ck.Value, r.PostFormValue(csrfField)) {
		c.forbidden(w, r, nil)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	client := clientOf(r)
	if wait := c.limiter.blocked(client); wait > 0 {
		secs := int(wait.Round(time.Second) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		c.cfg.Logger.Warn("console login refused: too many failed logins", "client", client)
		c.showLogin(w, r, http.StatusTooManyRequests, next, "Too many failed logins from here: try again in "+strconv.Itoa(max(secs, 1))+" s.")
		return
	}
	h := config.HashKey(strings.TrimSpace(r.PostFormValue("key")))
	scope, ok := c.cfg.Keys[h]
	if !ok {
		c.limiter.fail(client)
		c.cfg.Logger.Warn("console login failed", "client", client)
		c.showLogin(w, r, http.StatusUnauthorized, next, "This is not an operator key.")
		return
	}
	s := c.sessions.create(config.KeyName(h), scope)
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, sessionCookie, s.id, int(c.cfg.SessionTTL/time.Second))
	c.audit(r.Context(), s, "login", "client", client)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.end(s.id)
	setCookie(w, r, sessionCookie, "", -1)
	c.audit(r.Context(), s, "logout")
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// clientOf is the client's address as this process sees it (a proxy's,
// behind one: its operators then share a limit).
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// LoginLimit bounds failed logins: a client that failed Failures times
// within Window waits until the window has passed.
type LoginLimit struct {
	Failures int
	Window   time.Duration
}

// DefaultLoginLimit: 5 failures a minute per client.
var DefaultLoginLimit = LoginLimit{Failures: 5, Window: time.Minute}

type loginLimiter struct {
	lim LoginLimit
	now func() time.Time
	mu  sync.Mutex
	m   map[string][]time.Time // client -> its failures within the window
}

func newLoginLimiter(lim LoginLimit, now func() time.Time) *loginLimiter {
	return &loginLimiter{lim: lim, now: now, m: map[string][]time.Time{}}
}

// recent keeps the failures within the window (the lock held).
func (l *loginLimiter) recent(client string) []time.Time {
	now := l.now()
	f := l.m[client]
	for len(f) > 0 && now.Sub(f[0]) >= l.lim.Window {
		f = f[1:]
	}
	if len(f) == 0 {
		delete(l.m, client)
		return nil
	}
	l.m[client] = f
	return f
}

// blocked says how long client must still wait (0: it may try).
func (l *loginLimiter) blocked(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.recent(client)
	if len(f) < l.lim.Failures {
		return 0
	}
	return f[len(f)-l.lim.Failures].Add(l.lim.Window).Sub(l.now())
}

func (l *loginLimiter) fail(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > 10000 { // bounded: forget the clients whose failures are old
		for k := range l.m {
			l.recent(k)
		}
	}
	l.m[client] = append(l.recent(client), l.now())
}

// ScopeText is the session's scope as written, for the pages.
func (s *session) ScopeText() string { return s.scope.String() }

// Name is the session's operator key's name, for the pages.
func (s *session) Name() string { return s.name }
