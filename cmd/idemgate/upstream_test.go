package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// testUpstream is the service behind the gateway in these tests: an
// orders service that honours Idempotency-Key (an answer recorded for a
// key is replayed, never applied again) and counts its effects per key.
// The request body's "case" picks how it misbehaves, and "nonce" ties the
// attempts of one command together whatever key they carry.
type testUpstream struct {
	t    testing.TB
	port *testenv.Port // held from start to end: refused while down, never taken by another process
	addr string

	mu       sync.Mutex
	srv      *http.Server
	effects  map[string]int      // Idempotency-Key -> effects applied
	answers  map[string][]byte   // Idempotency-Key -> the recorded answer
	keys     map[string][]string // nonce -> the Idempotency-Key of every attempt
	statuses map[string]int      // Idempotency-Key -> the recorded status
	times    map[string][]time.Time
	healed   map[string]bool
	// traceparents is the traceparent of each command's last attempt.
	traceparents map[string]string
	// afterEffect, when set, runs once a command's effect is applied (or
	// found applied, for a repeated key) and before its answer is written.
	afterEffect func(nonce string)
}

func startUpstream(t testing.TB) *testUpstream {
	port := testenv.NewPort(t)
	u := &testUpstream{t: t, port: port, addr: port.Addr(), effects: map[string]int{}, answers: map[string][]byte{},
		keys: map[string][]string{}, statuses: map[string]int{}, times: map[string][]time.Time{}, healed: map[string]bool{}, traceparents: map[string]string{}}
	u.up()
	t.Cleanup(u.down)
	return u
}

// up (re)starts serving on the same address.
func (u *testUpstream) up() {
	l, err := u.port.Listen()
	if err != nil {
		u.t.Fatalf("upstream listen %s: %v", u.addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(u.serve)}
	u.mu.Lock()
	u.srv = srv
	u.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// down stops serving: connections are refused until up (the port stays
// held, listening no more).
func (u *testUpstream) down() {
	u.mu.Lock()
	srv := u.srv
	u.srv = nil
	u.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

type orderRequest struct {
	Case  string `json:"case"`
	Nonce string `json:"nonce"`
}

func (u *testUpstream) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var req orderRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		http.Error(w, "not JSON", 400)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	u.mu.Lock()
	u.keys[req.Nonce] = append(u.keys[req.Nonce], key)
	u.times[req.Nonce] = append(u.times[req.Nonce], time.Now())
	u.traceparents[req.Nonce] = r.Header.Get("Traceparent")
	attempt := len(u.keys[req.Nonce])
	if u.healed[req.Nonce] {
		req.Case = "healed"
	}
	if ans, done := u.answers[key]; done {
		status, hook := u.statuses[key], u.afterEffect
		u.mu.Unlock()
		if hook != nil {
			hook(req.Nonce)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/orders/"+key)
		w.WriteHeader(status)
		_, _ = w.Write(ans)
		return
	}
	u.mu.Unlock()
	switch {
	case req.Case == "500-twice" && attempt <= 2, req.Case == "always-500":
		w.WriteHeader(500)
		return
	case req.Case == "503-retry-after" && attempt == 1:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(503)
		return
	}
	status := 201
	if req.Case == "422" {
		status = 422
	}
	ans := []byte(fmt.Sprintf(`{"order":%q,"case":%q,"attempt":%d}`, key, req.Case, attempt))
	if req.Case == "big" { // applied, and answered with a body too large to keep
		ans = append(ans, strings.Repeat(" ", 2<<20)...)
	}
	u.mu.Lock()
	u.effects[key]++
	u.answers[key], u.statuses[key] = ans, status
	hook := u.afterEffect
	u.mu.Unlock()
	if hook != nil {
		hook(req.Nonce)
	}
	switch {
	case req.Case == "drop" && attempt == 1:
		// The effect is applied; the answer is lost with the connection.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case req.Case == "slow" && attempt == 1:
		// Slower than the route's 1 s timeout: no answer until the
		// projector gives up the attempt (or 30 s, far past it).
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/orders/"+key)
	w.WriteHeader(status)
	_, _ = w.Write(ans)
}

// effectsOf is how often the upstream applied the command of nonce, the
// keys its attempts carried, their times, and its recorded answer.
func (u *testUpstream) effectsOf(nonce string) (effects int, keys []string, answer []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	keys = append(keys, u.keys[nonce]...)
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		effects += u.effects[k]
		if a, ok := u.answers[k]; ok {
			answer = a
		}
	}
	return effects, keys, answer
}

// attemptTimes lists when the attempts of nonce's command arrived.
func (u *testUpstream) attemptTimes(nonce string) []time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]time.Time(nil), u.times[nonce]...)
}

// heal makes nonce's command succeed from now on (an operator fixed the
// upstream).
func (u *testUpstream) heal(nonce string) {
	u.mu.Lock()
	u.healed[nonce] = true
	u.mu.Unlock()
}

// routesFile writes a routes file with orders.create in front of u.
func (u *testUpstream) routesFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routes.yaml")
	body := fmt.Sprintf(`routes:
  - operation: orders.create
    path: /v1/orders
    upstream: http://%s/orders
    timeout: 1s
  - operation: orders.cancel
    path: /v1/orders/{id}/cancel
    upstream: http://%s/orders/{id}/cancel
    timeout: 1s
`, u.addr, u.addr)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func orderBody(c, nonce string) string {
	return fmt.Sprintf(`{"case":%q,"nonce":%q}`, c, nonce)
}

func oneKey(keys []string) bool {
	for _, k := range keys {
		if k != keys[0] || !strings.Contains(k, "-") {
			return false
		}
	}
	return len(keys) > 0
}

// setAfterEffect sets (or, with nil, removes) the afterEffect hook.
func (u *testUpstream) setAfterEffect(f func(nonce string)) {
	u.mu.Lock()
	u.afterEffect = f
	u.mu.Unlock()
}
