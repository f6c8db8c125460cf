package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/idemgate/idemgate/testenv"
)

// chromium finds Debian's chromium for the browser tests. Without it
// they skip, unless CI is set: .ci/run installs it, so there a missing
// chromium is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed and CI is set: .ci/run installs Debian's chromium package")
	}
	t.Skip("chromium is not installed (apt-get install chromium); CI installs it")
	return ""
}

// artifacts is the folder the browser tests save their screenshots in:
// $IDEMGATE_ARTIFACTS/console, else testdata/out/console (ignored by git).
func artifacts(t *testing.T) string {
	dir := filepath.Join("testdata", "out", "console")
	if a := os.Getenv("IDEMGATE_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestConsoleInABrowser drives the operator console in a headless
// chromium: log in, find a payment and a dead-lettered order in the
// list, open the order, drive it again and see it complete; a key
// holding <script> shows as text, a POST without the CSRF token is
// refused, and no page loads anything from another origin. Each page's
// screenshot is saved (artifacts).
func TestConsoleInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a stack and a browser")
	}
	chrome := chromium(t)
	out := artifacts(t)
	u := startUpstream(t)
	s := startStack(t, "IDEMGATE_ROUTES", u.routesFile(t), "IDEMGATE_SWEEP_INTERVAL", "200ms", "IDEMGATE_UPSTREAM_BACKOFF", "100ms",
		"IDEMGATE_CALL_RETRY_FOR", "1ms", "IDEMGATE_OPERATOR_KEYS", "op-test=*")

	// A payment whose key holds markup, and an order whose upstream
	// always fails: dead-lettered with a stored 502 after its 5 attempts.
	payKey := `<script>alert("k")</script>`
	pay := s.postPayment("key-a", payKey, `{"amount":1250,"currency":"EUR","customer":"cus_console"}`)
	mustPending(t, "payment", pay, false)
	s.waitCompleted("key-a", pay.Header.Get("Location"))
	nonce := testenv.Random(6)
	orderLoc := gatewayCommand(t, s, "console-dead-order", "always-500", nonce)
	mustEqual(t, "the order's recorded status", s.outcomeOf("key-a", orderLoc).Status, 502)
	orderID := strings.TrimPrefix(orderLoc, "/v1/operations/")
	payID := strings.TrimPrefix(pay.Header.Get("Location"), "/v1/operations/")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	// Every request the browser makes, for the same-origin check.
	var mu sync.Mutex
	var requested []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start the browser: %v", err)
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := chromedp.Do(actx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		v, err := chromedp.Run(actx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	scripts := func() int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("script").length`))
		if err != nil {
			t.Fatalf("count script elements: %v", err)
		}
		return n
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(out, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// 1. Log in: a page without a session leads to the login, which
	// comes back to it.
	do("open the console", chromedp.Navigate(s.base+"/console/operations"), chromedp.WaitVisible(chromedp.ID("key")))
	shot("login")
	do("log in", chromedp.SendKeys(chromedp.ID("key"), "op-test"), chromedp.Submit(chromedp.ID("key")),
		chromedp.WaitVisible(chromedp.CSS("table.operations")))

	// 2-3. Both commands are in the list; the markup key is text.
	text := get("read the list", chromedp.Text(chromedp.CSS("table.operations")))
	for _, want := range []string{payKey, "console-dead-order", "failed (dead-lettered, 502)", "completed (201)"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the list does not show %q:\n%s", want, text)
		}
	}
	mustEqual(t, "script elements on the list page (the key must be text)", scripts(), 0)
	shot("operations")
	do("filter the dead letters", chromedp.Navigate(s.base+"/console/operations?state=dead_lettered&operation=orders.create&tenant=tenant-a"))
	text = get("read the filtered list", chromedp.Text(chromedp.CSS("table.operations")))
	if !strings.Contains(text, "console-dead-order") || strings.Contains(text, payKey) {
		t.Fatalf("the dead-letter filter shows:\n%s", text)
	}
	shot("operations-dead-lettered")

	// 4. Open the dead-lettered order: its timeline, its drive-again button.
	do("open the order", chromedp.Click(chromedp.CSS("td.key a")), chromedp.WaitVisible(chromedp.ID("redrive")))
	text = get("read the order", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{orderID, "upstream attempt 1 failed", "upstream attempt 5 failed", "answered 500", "answer stored: 502", "dead-lettered"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the order's page does not show %q:\n%s", want, text)
		}
	}
	shot("operation-dead-lettered")

	// A POST without the CSRF token, with the browser's session: 403.
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.base + "/console/"}})
	if err != nil || len(cookies.Cookies) == 0 {
		t.Fatalf("the browser's console cookies: %v %v", cookies, err)
	}
	for _, form := range []url.Values{{}, {"csrf": {"forged"}}} {
		req, _ := http.NewRequest("POST", s.base+"/console/operations/"+orderID+"/redrive", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range cookies.Cookies {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mustEqual(t, fmt.Sprintf("a redrive POST with the session and form %v", form), resp.StatusCode, http.StatusForbidden)
	}
	do("reload", chromedp.Reload())
	mustEqual(t, "state after the refused POSTs", get("read the state", chromedp.Text(chromedp.CSS("dd.state"))), "failed (dead-lettered, 502)")

	// 5. Drive it again, through the confirmation, once the upstream
	// answers; it completes.
	u.heal(nonce)
	do("ask to drive it again", chromedp.Click(chromedp.ID("redrive")), chromedp.WaitVisible(chromedp.ID("confirm-redrive")))
	shot("operation-confirm-redrive")
	do("confirm", chromedp.Click(chromedp.ID("confirm-redrive")), chromedp.WaitVisible(chromedp.CSS("p.notice")))
	testenv.Eventually(t, 60*time.Second, "the redriven order completed on its page", func() error {
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			return err
		}
		state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("dd.state")))
		if err != nil {
			return err
		}
		return testenv.Check(state == "completed (201)", "state %q", state)
	})
	text = get("read the completed order", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"driven again", "it was dead-lettered with 502", "re-emitted", "answer stored: 201", "applied"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the completed order's page does not show %q:\n%s", want, text)
		}
	}
	shot("operation")
	mustOneEffect(t, s, u, "console-dead-order", "always-500", nonce, orderLoc, 201)

	// The key lookup leads to the payment, whose key shows as text.
	do("open the key lookup", chromedp.Navigate(s.base+"/console/lookup"), chromedp.WaitVisible(chromedp.CSS("input[name=key]")))
	shot("lookup")
	do("look the payment's key up", chromedp.SendKeys(chromedp.CSS("input[name=tenant]"), "tenant-a"),
		chromedp.SetValue(chromedp.CSS("select[name=operation]"), "payments.create"),
		chromedp.SendKeys(chromedp.CSS("input[name=key]"), payKey), chromedp.Submit(chromedp.CSS("input[name=key]")),
		chromedp.WaitVisible(chromedp.CSS("dd.key")))
	mustEqual(t, "the payment's key as shown", get("read the key", chromedp.Text(chromedp.CSS("dd.key"))), payKey)
	mustEqual(t, "the lookup's page", get("where the lookup led", chromedp.Location()), s.base+"/console/operations/"+payID)
	mustEqual(t, "script elements on the payment's page", scripts(), 0)
	shot("operation-payment")

	do("open the overview", chromedp.Navigate(s.base+"/console/"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	text = get("read the overview", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"accepted: 2", "completed: 2", "database", "kafka", "records behind"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the overview does not show %q:\n%s", want, text)
		}
	}
	shot("overview")

	// Nothing came from another origin.
	mu.Lock()
	defer mu.Unlock()
	if len(requested) < 10 {
		t.Fatalf("only %d requests seen: the network events were not recorded", len(requested))
	}
	for _, r := range requested {
		if !strings.HasPrefix(r, s.base+"/") {
			t.Errorf("a page loaded %s, outside the console's origin %s", r, s.base)
		}
	}
}

// consoleSession is an operator logged in to the console over plain
// HTTP: its cookies and its session's CSRF token.
type consoleSession struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (cs *consoleSession) get(path string) (int, string) {
	cs.t.Helper()
	resp, err := cs.c.Get(cs.base + path)
	if err != nil {
		cs.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (cs *consoleSession) post(path string, form url.Values) int {
	cs.t.Helper()
	resp, err := cs.c.PostForm(cs.base+path, form)
	if err != nil {
		cs.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func consoleLogin(t *testing.T, base, key string) *consoleSession {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	cs := &consoleSession{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	_, page := cs.get("/console/login")
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no token in the login form: %s", page)
	}
	if st := cs.post("/console/login", url.Values{"key": {key}, "csrf": {m[1]}}); st != http.StatusSeeOther {
		t.Fatalf("login as %s: %d", key, st)
	}
	_, page = cs.get("/console/")
	if m = csrfInput.FindStringSubmatch(page); m == nil {
		t.Fatalf("no session token on the overview: %s", page)
	}
	cs.csrf = m[1]
	return cs
}

// TestConsoleHoldsTheScope: an operator key of tenant-b sees tenant-b's
// operations only, and can neither open, look up nor drive again
// tenant-a's, even with a valid CSRF token; a key of scope * sees both.
func TestConsoleHoldsTheScope(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a stack")
	}
	s := startStack(t, "IDEMGATE_OPERATOR_KEYS", "op-all=*,op-b=tenant-b")
	a := s.postPayment("key-a", "scope-a", `{"amount":100,"currency":"EUR","customer":"cus_a"}`)
	b := s.postPayment("key-b", "scope-b", `{"amount":200,"currency":"EUR","customer":"cus_b"}`)
	s.waitCompleted("key-a", a.Header.Get("Location"))
	s.waitCompleted("key-b", b.Header.Get("Location"))
	aID := strings.TrimPrefix(a.Header.Get("Location"), "/v1/operations/")
	bID := strings.TrimPrefix(b.Header.Get("Location"), "/v1/operations/")

	opB := consoleLogin(t, s.base, "op-b")
	st, page := opB.get("/console/operations")
	if st != 200 || !strings.Contains(page, bID) || strings.Contains(page, aID) {
		t.Fatalf("tenant-b's operator's list (%d) must show %s and not %s:\n%s", st, bID, aID, page)
	}
	for path, want := range map[string]int{
		"/console/operations/" + bID:                                                    200,
		"/console/operations/" + aID:                                                    404,
		"/console/operations/" + aID + "/redrive":                                       404,
		"/console/operations?tenant=tenant-a":                                           403,
		"/console/lookup?tenant=tenant-a&operation=payments.create&key=scope-a":         403,
		"/console/lookup?tenant=tenant-b&operation=payments.create&key=scope-b":         303,
		"/console/operations?state=bogus":                                               400,
		"/console/operations?after=not-a-cursor":                                        400,
		"/console/operations/not-a-uuid":                                                404,
		"/console/operations?state=completed&operation=payments.create&tenant=tenant-b": 200,
	} {
		if st, _ := opB.get(path); st != want {
			t.Errorf("GET %s as tenant-b's operator: %d, want %d", path, st, want)
		}
	}
	if st := opB.post("/console/operations/"+aID+"/redrive", url.Values{"csrf": {opB.csrf}}); st != http.StatusNotFound {
		t.Errorf("tenant-b's operator drove tenant-a's operation again: %d, want 404", st)
	}
	// A completed payment is no dead letter: refused, whoever asks.
	if st := opB.post("/console/operations/"+bID+"/redrive", url.Values{"csrf": {opB.csrf}}); st != http.StatusConflict {
		t.Errorf("drive a completed payment again: %d, want 409", st)
	}
	if st := opB.post("/console/logout", url.Values{"csrf": {opB.csrf}}); st != http.StatusSeeOther {
		t.Errorf("logout: %d", st)
	}
	if st, _ := opB.get("/console/operations/" + bID); st != http.StatusSeeOther {
		t.Errorf("a page after logout: %d, want 303 to the login", st)
	}

	all := consoleLogin(t, s.base, "op-all")
	if st, page := all.get("/console/operations"); st != 200 || !strings.Contains(page, aID) || !strings.Contains(page, bID) {
		t.Fatalf("the * operator's list (%d) must show both:\n%s", st, page)
	}
}
