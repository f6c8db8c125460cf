package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// TestLedger runs the example in dev mode (on the test database) and
// deposits through its API: a deposit completes, a retry replays it
// without crediting again, and a reused key with another amount is 409.
func TestLedger(t *testing.T) {
	t.Chdir(t.TempDir()) // dev mode keeps its Kafka log in ./.ledger
	// The API's port is held by the test from here to the end; dev mode
	// serves on a listener on it that it takes over (fd:N).
	port := testenv.NewPort(t)
	addr, err := port.Fd()
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": env.NewDatabase(t), "IDEMGATE_ADDR": addr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return vars[k] }, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	base := "http://" + port.Addr()
	testenv.Eventually(t, 30*time.Second, "the service ready", func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return testenv.Check(resp.StatusCode == 200, "/readyz: %d", resp.StatusCode)
	})

	deposit := func(key, body string) (int, string, http.Header) {
		req, _ := http.NewRequest("POST", base+"/v1/accounts/acc-1/deposits", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer dev-key-a")
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	completed := func(key, body string) string {
		var got string
		testenv.Eventually(t, 30*time.Second, "deposit "+key+" completed", func() error {
			status, b, h := deposit(key, body)
			got = b
			return testenv.Check(status == 201 && h.Get("Idempotent-Replayed") == "true", "%d %s", status, b)
		})
		return got
	}

	if status, b, _ := deposit("d-1", `{"amount":100}`); status != 202 {
		t.Fatalf("first deposit: %d %s", status, b)
	}
	first := completed("d-1", `{"amount":100}`)
	if first != `{"account":"acc-1","balance":100,"deposited":100}` {
		t.Fatalf("recorded %s", first)
	}
	if again := completed("d-1", `{ "amount": 1e2 }`); again != first {
		t.Fatalf("replay %s, want %s byte for byte", again, first)
	}
	if status, b, _ := deposit("d-1", `{"amount":5}`); status != 409 {
		t.Fatalf("same key, other amount: %d %s", status, b)
	}
	deposit("d-2", `{"amount":50}`)
	if second := completed("d-2", `{"amount":50}`); second != `{"account":"acc-1","balance":150,"deposited":50}` {
		t.Fatalf("second deposit recorded %s: the first was credited more than once?", second)
	}
}
