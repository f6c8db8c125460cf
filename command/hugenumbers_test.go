package command

import (
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// hugeNumberBodies are bodies of about a megabyte whose one number is a
// million characters long: before the bound on number literals, the
// canonical form parsed each in full (3.5 s of CPU for the fraction).
func hugeNumberBodies() map[string]string {
	digits := strings.Repeat("7", 1_000_000)
	return map[string]string{
		"integer":  `{"amount":` + digits + `,"currency":"EUR","customer":"cus_h"}`,
		"fraction": `{"amount":0.` + digits[2:] + `,"currency":"EUR","customer":"cus_h"}`,
		"exponent": `{"amount":1e` + digits[2:] + `,"currency":"EUR","customer":"cus_h"}`,
		"nested":   `{"amount":1,"currency":"EUR","customer":"cus_h","x":[[` + digits + `]]}`,
	}
}

// TestHugeNumbersAreRefusedCheaply refuses a million-digit number before
// any parse of it, and proves "cheaply" by work rather than by time: the
// refusal allocates no more than reading the body does (a few times its
// size), where parsing the number would allocate far more. The time it
// takes is BenchmarkHugeNumberRefusal's.
func TestHugeNumbersAreRefusedCheaply(t *testing.T) {
	for name, body := range hugeNumberBodies() {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			req := httptest.NewRequest("POST", "/v1/payments", strings.NewReader(body))
			runtime.ReadMemStats(&before)
			_, _, p := readJSONBody(req)
			runtime.ReadMemStats(&after)
			if p == nil || !strings.Contains(p.Detail, "numbers may have at most 40") {
				t.Fatalf("problem %+v, want the refusal of the number's length", p)
			}
			got, limit := after.TotalAlloc-before.TotalAlloc, uint64(4*len(body))
			t.Logf("%d bytes allocated for a body of %d", got, len(body))
			if got > limit {
				t.Fatalf("the refusal allocated %d bytes for a body of %d: more than reading it (limit %d)", got, len(body), limit)
			}
		})
	}
}

// BenchmarkHugeNumberRefusal is the time of the refusal (it was a test's
// wall-clock bound, 500 ms, in hostile/numbers_test.go).
func BenchmarkHugeNumberRefusal(b *testing.B) {
	body := hugeNumberBodies()["fraction"]
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, p := readJSONBody(httptest.NewRequest("POST", "/v1/payments", strings.NewReader(body))); p == nil {
			b.Fatal("not refused")
		}
	}
}
