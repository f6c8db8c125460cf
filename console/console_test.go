package console

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/store"
)

// These tests need no database: the login, the sessions, the CSRF
// check, the scope and the escaping are pure logic. The pages' data is
// driven in a real browser by TestConsoleInABrowser (cmd/idemgate).

func TestValidCSRF(t *testing.T) {
	for _, c := range []struct {
		expected, got string
		want          bool
	}{{"tok", "tok", true}, {"tok", "", false}, {"", "", false}, {"tok", "tok2", false}, {"tok", "TOK", false}} {
		if validCSRF(c.expected, c.got) != c.want {
			t.Errorf("validCSRF(%q, %q) = %v", c.expected, c.got, !c.want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/operations?state=pending": "/console/operations?state=pending",
		"":                                  "/console/",
		"https://evil.example/":             "/console/",
		"//evil.example/console/":           "/console/",
		"/v1/payments":                      "/console/",
		"/console/\\evil":                   "/console/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoginLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLoginLimiter(LoginLimit{Failures: 3, Window: time.Minute}, func() time.Time { return now })
	for range 3 {
		if l.blocked("a") != 0 {
			t.Fatal("blocked before its failures")
		}
		l.fail("a")
		now = now.Add(time.Second)
	}
	if w := l.blocked("a"); w != 57*time.Second {
		t.Fatalf("3 s after the first of 3 failures: wait %v, want 57s (the rest of its window)", w)
	}
	if l.blocked("b") != 0 {
		t.Fatal("another client is blocked too")
	}
	now = now.Add(57 * time.Second)
	if w := l.blocked("a"); w != 0 {
		t.Fatalf("after the window: wait %v", w)
	}
}

func TestStateFilterAndCursor(t *testing.T) {
	for _, s := range listStates {
		if _, ok := stateFilter(s.Value); !ok {
			t.Errorf("state %q offered but refused", s.Value)
		}
	}
	if f, _ := stateFilter("failed"); !f.DeadLettered {
		t.Error("failed is not dead_lettered")
	}
	if _, ok := stateFilter("<script>"); ok {
		t.Error("an unknown state accepted")
	}
	k := store.KeyCursor{AcceptedAt: time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC), OperationID: "0b9c1a52-8f0e-4c47-9d5b-2f0f5f1f6a11"}
	got, err := decodeCursor(encodeCursor(k))
	if err != nil || !got.AcceptedAt.Equal(k.AcceptedAt) || got.OperationID != k.OperationID {
		t.Fatalf("cursor round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "x_y", "2026-05-01T12:00:00Z_notauuid", "2026-05-01T12:00:00Z"} {
		if _, err := decodeCursor(bad); err == nil {
			t.Errorf("decodeCursor(%q) accepted", bad)
		}
	}
}

func TestChartHasOnlyNumbers(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 30, 20, 0, time.UTC)
	c := newChart(now, []store.Minute{{At: now.Truncate(time.Minute), Count: 10}, {At: now.Add(-2 * time.Hour), Count: 99}},
		[]store.Minute{{At: now.Truncate(time.Minute).Add(-time.Minute), Count: 5}}, nil)
	if c.TotalAcc != 10 || c.TotalComp != 5 || c.Max != 10 {
		t.Fatalf("totals %d %d max %d: a minute outside the hour was counted, or one inside was not", c.TotalAcc, c.TotalComp, c.Max)
	}
	if !regexp.MustCompile(`^(\d+,\d+ ){59}\d+,\d+$`).MatchString(c.Accepted) {
		t.Fatalf("points %q", c.Accepted)
	}
	if !strings.HasSuffix(c.Accepted, "719,1") {
		t.Fatalf("the last minute's peak is not at the top right: %q", c.Accepted)
	}
}

// newTestConsole is a console on a store with no database: the pages
// that read nothing.
func newTestConsole(t *testing.T, keys map[string]string) (*Console, *httptest.Server) {
	t.Helper()
	reg, err := idemgate.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	hashed := map[config.KeyHash]config.OperatorScope{}
	for k, s := range keys {
		sc, err := config.ParseOperatorScope(s)
		if err != nil {
			t.Fatal(err)
		}
		hashed[config.HashKey(k)] = sc
	}
	c, err := New(Config{Store: store.New(nil, 0), Keys: hashed, Registry: reg, Login: LoginLimit{Failures: 2, Window: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return c, srv
}

func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var tokenField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginToken gets the login form and its CSRF token.
func loginToken(t *testing.T, cl *http.Client, base string) string {
	t.Helper()
	resp, err := cl.Get(base + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := tokenField.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the login form:\n%s", body)
	}
	return string(m[1])
}

func post(t *testing.T, cl *http.Client, u string, form url.Values) *http.Response {
	t.Helper()
	resp, err := cl.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestLogin(t *testing.T) {
	_, srv := newTestConsole(t, map[string]string{"op-all": "*"})
	t.Run("PageWithoutSessionRedirectsToLogin", func(t *testing.T) {
		resp, err := client(t).Get(srv.URL + "/console/operations?state=pending")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login?next=%2Fconsole%2Foperations%3Fstate%3Dpending" {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("AssetsWithoutSessionNoListing", func(t *testing.T) {
		for path, want := range map[string]int{"/console/assets/console.css": 200, "/console/assets/favicon.svg": 200, "/console/assets/": 404} {
			resp, err := client(t).Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want || resp.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("GET %s: %d (CSP %q), want %d", path, resp.StatusCode, resp.Header.Get("Content-Security-Policy"), want)
			}
		}
	})
	t.Run("LoginWithoutTokenIs403", func(t *testing.T) {
		if r := post(t, client(t), srv.URL+"/console/login", url.Values{"key": {"op-all"}}); r.StatusCode != http.StatusForbidden {
			t.Fatalf("%d", r.StatusCode)
		}
	})
	t.Run("LoginSetsAStrictHttpOnlyCookieAnd303", func(t *testing.T) {
		cl := client(t)
		tok := loginToken(t, cl, srv.URL)
		r := post(t, cl, srv.URL+"/console/login", url.Values{"key": {"op-all"}, "csrf": {tok}, "next": {"/console/lookup"}})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/console/lookup" {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		var ck *http.Cookie
		for _, c := range r.Cookies() {
			if c.Name == sessionCookie {
				ck = c
			}
		}
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/console/" {
			t.Fatalf("session cookie %+v", ck)
		}
		// A POST with the session but without its token is refused.
		if r := post(t, cl, srv.URL+"/console/logout", nil); r.StatusCode != http.StatusForbidden {
			t.Fatalf("logout without token: %d", r.StatusCode)
		}
		if r := post(t, cl, srv.URL+"/console/logout", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusForbidden {
			t.Fatalf("logout with the login form's token: %d", r.StatusCode)
		}
	})
	t.Run("SecureBehindTLS", func(t *testing.T) {
		cl := client(t)
		tok := loginToken(t, cl, srv.URL)
		req, _ := http.NewRequest("POST", srv.URL+"/console/login", strings.NewReader(url.Values{"key": {"op-all"}, "csrf": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-Proto", "https")
		u, _ := url.Parse(srv.URL)
		for _, c := range cl.Jar.Cookies(u) {
			req.AddCookie(c)
		}
		r, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		for _, c := range r.Cookies() {
			if c.Name == sessionCookie && !c.Secure {
				t.Fatal("session cookie not Secure behind TLS")
			}
		}
	})
	t.Run("FailedLoginsAreRateLimited", func(t *testing.T) {
		cl := client(t)
		for i, want := range []int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusTooManyRequests} {
			tok := loginToken(t, cl, srv.URL)
			if r := post(t, cl, srv.URL+"/console/login", url.Values{"key": {"wrong"}, "csrf": {tok}}); r.StatusCode != want {
				t.Fatalf("attempt %d: %d, want %d", i+1, r.StatusCode, want)
			}
		}
		// Even the right key waits.
		tok := loginToken(t, cl, srv.URL)
		r := post(t, cl, srv.URL+"/console/login", url.Values{"key": {"op-all"}, "csrf": {tok}})
		if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
			t.Fatalf("right key while limited: %d Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
		}
	})
}

func TestPagesEscapeAndHoldTheScope(t *testing.T) {
	c, _ := newTestConsole(t, map[string]string{"op": "tenant-a"})
	sc, _ := config.ParseOperatorScope("tenant-a")
	s := c.sessions.create("sha256:000000000000", sc)
	evil := `<script>alert(1)</script>`
	v := store.OperationView{KeyView: store.KeyView{Tenant: "tenant-a", Operation: "payments.create", Key: evil, OperationID: "0b9c1a52-8f0e-4c47-9d5b-2f0f5f1f6a11",
		State: idemgate.ClaimCompleted, DeadLettered: true, AcceptedAt: time.Now(),
		Response: &idemgate.Response{Status: 500, ContentType: idemgate.ContentTypeProblem, Body: []byte(`{"detail":"` + evil + `"}`)}},
		Request: []byte(`{"customer":"` + evil + `"}`)}
	rec := httptest.NewRecorder()
	c.render(rec, httptest.NewRequest("GET", "/console/operations/x", nil), 200, "operation", s, newOperationPage(v))
	body := rec.Body.String()
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("a key with <script> is not escaped:\n%s", body)
	}
	if !strings.Contains(body, `id="redrive"`) {
		t.Fatal("a dead-lettered command has no drive-again button")
	}
	// The list refuses a tenant outside the scope.
	rec = httptest.NewRecorder()
	c.operations(rec, httptest.NewRequest("GET", "/console/operations?tenant=tenant-b", nil), s)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("a tenant outside the scope: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	c.lookup(rec, httptest.NewRequest("GET", "/console/lookup?tenant=tenant-b&operation=payments.create&key=k", nil), s)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("a lookup outside the scope: %d", rec.Code)
	}
	if got := tenants(sc); len(got) != 1 || got[0] != "tenant-a" {
		t.Fatalf("tenants(%v) = %v", sc, got)
	}
	if all, _ := config.ParseOperatorScope("*"); tenants(all) != nil {
		t.Fatal("scope * does not read every tenant")
	}
}

func TestAuditLineNamesTheOperatorKey(t *testing.T) {
	var buf strings.Builder
	c := &Console{cfg: Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))}}
	sc, _ := config.ParseOperatorScope("tenant-a|tenant-b")
	name := config.KeyName(config.HashKey("the-operator-key"))
	c.audit(t.Context(), &session{name: name, scope: sc}, "redrive", "operation_id", "abc", "result", "ok")
	line := buf.String()
	for _, want := range []string{`msg="console audit"`, "action=redrive", "operator=" + name, "scope=tenant-a|tenant-b", "operation_id=abc", "result=ok"} {
		if !strings.Contains(line, want) {
			t.Errorf("audit line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "the-operator-key") {
		t.Error("the audit line holds the key itself")
	}
}
