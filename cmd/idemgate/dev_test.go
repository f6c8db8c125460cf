package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// TestDevSurvivesKill9 runs `idemgate dev` as a process of its own (this
// test binary, re-executed as the command), accepts commands, kills it
// with -9 while they are in flight, and starts it again on the same
// --data-dir: every command answered 202 completes, exactly once.
func TestDevSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs dev as a child process and kills it")
	}
	dir, err := os.MkdirTemp("", "idemgate-devkill-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // runs last, after both dev processes stopped
	// The API's port is held across the restart: nothing else can take it
	// meanwhile, and connections are refused while no dev process runs.
	port := testenv.NewPort(t)
	base := "http://" + port.Addr()

	dev := startDev(t, dir, port)
	var mu sync.Mutex
	accepted := map[string]string{} // idempotency key -> Location
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				key := fmt.Sprintf("k-%d-%d", c, i)
				status, loc := postRaw(base, key)
				if status == 202 {
					mu.Lock()
					accepted[key] = loc
					mu.Unlock()
				}
			}
		}()
	}
	// Mid-load, once a few commands are accepted (observed, not slept
	// on: beside a busy CPU, the first 202 can take longer than any
	// fixed pause): some claims are committed, their events maybe not.
	testenv.Eventually(t, 60*time.Second, "five commands accepted", func() error {
		mu.Lock()
		defer mu.Unlock()
		return testenv.Check(len(accepted) >= 5, "%d accepted", len(accepted))
	})
	dev.Kill() // the process alone: its PostgreSQL server lives on and is adopted by the next start
	wg.Wait()
	if len(accepted) == 0 {
		t.Fatal("no command was accepted before the kill")
	}

	startDev(t, dir, port)
	for key, loc := range accepted {
		testenv.Eventually(t, 60*time.Second, "command "+key+" accepted before the kill completed", func() error {
			status, body := getRaw(base + loc)
			return testenv.Check(status == 200 && strings.Contains(body, `"status":"completed"`), "%s: %d %s", loc, status, body)
		})
	}
	// Each accepted command has exactly one payment.
	ids := map[string]bool{}
	for key := range accepted {
		status, _ := postRaw(base, key)
		mustEqual(t, "replay of "+key, status, 201)
	}
	for _, loc := range accepted {
		_, body := getRaw(base + loc)
		var v struct {
			Response struct {
				Body struct{ ID string } `json:"body"`
			} `json:"response"`
		}
		_ = json.Unmarshal([]byte(body), &v)
		if ids[v.Response.Body.ID] {
			t.Fatalf("payment %s recorded for two commands", v.Response.Body.ID)
		}
		ids[v.Response.Body.ID] = true
	}
	t.Logf("%d commands accepted before kill -9; all completed once after restart", len(accepted))
}

// startDev starts dev mode in a process of its own (selfProc), serving
// on a listener on port that it inherits, and waits until it serves.
func startDev(t *testing.T, dir string, port *testenv.Port) *testenv.Proc {
	t.Helper()
	p := startSelf(t, "dev", []string{"IDEMGATE_LEASE=1s", "IDEMGATE_SWEEP_INTERVAL=200ms"},
		"dev", "--data-dir", dir, "--addr", port.Addr())
	p.WaitLog(regexp.MustCompile(`^idemgate dev: API on`), 90*time.Second)
	return p
}

func postRaw(base, key string) (int, string) {
	req, _ := http.NewRequest("POST", base+"/v1/payments", strings.NewReader(`{"amount":1234,"currency":"EUR","customer":"cus_k"}`))
	req.Header.Set("Authorization", "Bearer dev-key-a")
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Location")
}

func getRaw(url string) (int, string) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer dev-key-a")
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
