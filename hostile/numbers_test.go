package hostile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// TestHugeNumbersAreRefusedCheaply (finding 5): a number literal of a
// million digits (integer, fraction, exponent, nested; on a payment and
// on a gateway route with a JSON Schema) gets a 422 and consumes no key;
// beside six clients sending such bodies back to back, every one is
// refused and a legitimate client's commands are all accepted. The
// latencies are logged, not bounded: that the refusal is cheap (no parse
// of the number: it allocates no more than reading the body) is
// command.TestHugeNumbersAreRefusedCheaply, and its time is
// command.BenchmarkHugeNumberRefusal.
func TestHugeNumbersAreRefusedCheaply(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	s := newStack(t)
	a := s.serve("IDEMGATE_ROUTES", routesFile(t))

	digits := strings.Repeat("7", 1_000_000)
	cases := []struct{ name, path, body string }{
		{"integer amount", "/v1/payments", `{"amount":` + digits + `,"currency":"EUR","customer":"cus_h"}`},
		{"fraction amount", "/v1/payments", `{"amount":0.` + digits[2:] + `,"currency":"EUR","customer":"cus_h"}`},
		{"exponent amount", "/v1/payments", `{"amount":1e` + digits[2:] + `,"currency":"EUR","customer":"cus_h"}`},
		{"nested in an array", "/v1/payments", `{"amount":1,"currency":"EUR","customer":"cus_h","x":[[` + digits + `]]}`},
		{"gateway route (JSON Schema)", "/v1/orders", `{"sku":"book","quantity":` + digits + `}`},
	}
	for i, c := range cases {
		key := fmt.Sprintf("huge-%d", i)
		r := testenv.Do("POST", a.Base+c.path, c.body, "Authorization", "Bearer key-a", "Idempotency-Key", key, "Content-Type", "application/json")
		t.Logf("%-28s (%d bytes): %d in %v", c.name, len(c.body), r.Status, ms(r.Took))
		if r.Err != nil || r.Status != 422 || !strings.Contains(string(r.Body), "numbers may have at most 40") {
			t.Errorf("%s: %v, want a 422 refusing the number's length", c.name, r)
		}
		// The refusal consumed no key.
		ok := testenv.Do("POST", a.Base+c.path, validBodyFor(c.path), "Authorization", "Bearer key-a", "Idempotency-Key", key, "Content-Type", "application/json")
		if ok.Status != 202 {
			t.Errorf("%s: the same key with a valid body: %v, want 202", c.name, ok)
		}
	}
	// The bound is on the literal, not the value: 40 characters reach the
	// payment's own validation, 41 do not.
	for _, c := range []struct {
		literal, want string
	}{{strings.Repeat("1", 40), "amount"}, {strings.Repeat("1", 41), "numbers may have at most 40"}} {
		r := a.postPayment("len-"+fmt.Sprint(len(c.literal)), `{"amount":`+c.literal+`,"currency":"EUR","customer":"cus_h"}`)
		if r.Status != 422 || !strings.Contains(string(r.Body), c.want) {
			t.Errorf("a %d-digit amount: %v, want a 422 mentioning %q", len(c.literal), r, c.want)
		}
	}

	// A legitimate client alone, then beside six attackers.
	legit := func(prefix string) []time.Duration {
		var lat []time.Duration
		for i := range 100 {
			r := a.postPayment(fmt.Sprintf("%s-%d", prefix, i), payment)
			if r.Status != 202 {
				t.Errorf("legitimate POST: %v", r)
			}
			lat = append(lat, r.Took)
			time.Sleep(20 * time.Millisecond) // the client's pace, not a wait for anything
		}
		return lat
	}
	alone := legit("alone")
	// Six attackers, each sending a million-digit body four times a
	// second: before the fix each one cost 3.5 s of CPU to parse.
	stop := make(chan struct{})
	var sent, slow atomic.Int64 // slow: not answered 422
	var attackerMax atomic.Int64
	var wg sync.WaitGroup
	huge := cases[1].body // the fraction: the costliest to parse before the fix
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				r := a.postPayment(fmt.Sprintf("attack-%d-%d", w, i), huge)
				sent.Add(1)
				if r.Status != 422 {
					slow.Add(1)
				}
				if d := int64(r.Took); d > attackerMax.Load() {
					attackerMax.Store(d)
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	testenv.Eventually(t, 30*time.Second, "the attack under way (six refusals)", func() error {
		return testenv.Check(sent.Load() >= 6, "%d attack requests answered", sent.Load())
	})
	attacked := legit("attacked")
	close(stop)
	wg.Wait()
	m0, m1 := percentile(alone, 50), percentile(attacked, 50)
	t.Logf("legitimate POST median %v alone, %v beside 6 attackers (p90 %v -> %v); the attackers sent %d million-digit bodies, each refused within %v",
		ms(m0), ms(m1), ms(percentile(alone, 90)), ms(percentile(attacked, 90)), sent.Load(), ms(time.Duration(attackerMax.Load())))
	if slow.Load() > 0 {
		t.Errorf("%d attack requests were not answered 422", slow.Load())
	}
}

// routesFile writes a gateway routes file whose route has a JSON Schema.
// Its upstream is never called: every request in these tests is refused
// before the claim, or never projected.
func routesFile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	schema := `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["sku","quantity"],
"properties":{"sku":{"type":"string"},"quantity":{"type":"integer","minimum":1}},"additionalProperties":false}`
	routes := "routes:\n  - operation: orders.create\n    path: /v1/orders\n    upstream: http://127.0.0.1:9/orders\n    schema: order.schema.json\n"
	for name, body := range map[string]string{"order.schema.json": schema, "routes.yaml": routes} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "routes.yaml")
}

func validBodyFor(path string) string {
	if path == "/v1/orders" {
		return `{"sku":"book","quantity":2}`
	}
	return payment
}
