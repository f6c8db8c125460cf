package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestValidateAllowsOnlyLoopback(t *testing.T) {
	for _, tc := range []struct {
		url, db string
		ok      bool
	}{
		{"http://127.0.0.1:8080", "", true},
		{"http://localhost:8080", "postgres://u@localhost:5432/d", true},
		{"http://[::1]:8080", "postgres://u@127.0.0.1:5432/d", true},
		{"http://10.0.0.1:8080", "", false},
		{"http://example.com", "", false},
		{"https://127.0.0.1:8443", "", false},
		{"http://127.0.0.1:8080", "postgres://u@db.example.com:5432/d", false},
	} {
		c := defaults()
		c.URL, c.DB = tc.url, tc.db
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("url %q db %q: Validate() = %v, want ok=%v", tc.url, tc.db, err, tc.ok)
		}
	}
	c := defaults()
	c.Metrics = []target{{Name: "serve", URL: "http://192.168.1.1/metrics"}}
	if c.Validate() == nil {
		t.Error("a /metrics endpoint off the machine was accepted")
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(d)
	if p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Fatalf("percentiles of 1..100 ms = %+v", *p)
	}
}

// A stalled request must not hide the requests queued behind it: in the
// open loop their latency counts from their slot in the schedule.
func TestOpenLoopCountsLatencyFromTheSchedule(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 1 {
			time.Sleep(300 * time.Millisecond) // the stall the test measures, not a wait
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	c := defaults()
	c.URL, c.Conns = srv.URL, 1
	outs := openLoop(context.Background(), newPoster(c), 1, 100, 200*time.Millisecond, sequentialKey("t"))
	if len(outs) != 20 {
		t.Fatalf("%d requests, want 20", len(outs))
	}
	// Request 1's slot is 10 ms after request 0's; it can only leave once
	// request 0 is answered, at least 300 ms after its slot.
	second := outs[1]
	if second.Delay < 280*time.Millisecond || second.Latency < 280*time.Millisecond {
		t.Fatalf("the request queued behind the stall: delay %v, latency %v; want both >= 280ms", second.Delay, second.Latency)
	}
	if st := openStats(outs, c); st.Late < 10 {
		t.Fatalf("%d requests counted late, want the ones queued behind the stall", st.Late)
	}
}

func TestScrapeSumsRetryCountersOverLabels(t *testing.T) {
	with := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `# HELP idemgate_sql_tx_retries_total Transaction retries.
# TYPE idemgate_sql_tx_retries_total counter
idemgate_sql_tx_retries_total{op="claim"} 3
idemgate_sql_tx_retries_total{op="mark"} 4
idemgate_sql_tx_retries_totalx 100
idemgate_sql_tx_gave_up_total 1
syncapi_tx_retries_total 5
syncapi_tx_gave_up_total 2
`)
	}))
	defer with.Close()
	without := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "go_goroutines 12\n")
	}))
	defer without.Close()

	sums, found, err := scrape(context.Background(), []target{{"a", with.URL}, {"b", with.URL}, {"c", without.URL}})
	if err != nil || !found {
		t.Fatalf("scrape: found %v, err %v", found, err)
	}
	if sums["idemgate_sql_tx_retries_total"] != 24 || sums["idemgate_sql_tx_gave_up_total"] != 6 {
		t.Fatalf("sums = %v, want 24 retries and 6 gave up (idemgate's and the baselines' counters)", sums)
	}
	if _, found, err := scrape(context.Background(), []target{{"c", without.URL}}); err != nil || found {
		t.Fatalf("an endpoint without the counters: found %v, err %v", found, err)
	}
}

func TestStatTimesReadsThisProcess(t *testing.T) {
	_, _, ppid, err := statTimes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ppid != os.Getppid() {
		t.Fatalf("ppid %d, want %d", ppid, os.Getppid())
	}
	if _, err := cpuSeconds(proc{Name: "parent", PID: os.Getppid(), Children: true}); err != nil {
		t.Fatal(err)
	}
}

func TestValidateSchemaAndHogShare(t *testing.T) {
	for _, tc := range []struct {
		mode, schema string
		share        float64
		ok           bool
	}{
		{"closed", "idemgate", 0.5, true},
		{"closed", "syncoutbox", 0.5, true},
		{"closed", "syncclaim", 0.5, false},
		{"hog", "idemgate", 1, true},
		{"hog", "idemgate", 0, false},
		{"hog", "idemgate", 1.5, false},
	} {
		c := defaults()
		c.Mode, c.Schema, c.Share = tc.mode, tc.schema, tc.share
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("mode %s schema %s share %g: Validate() = %v, want ok=%v", tc.mode, tc.schema, tc.share, err, tc.ok)
		}
	}
}

// Each system's completion and event times are read from its own claim
// and outbox tables.
func TestRunClaimsJoinsTheSchemasTables(t *testing.T) {
	for schema, want := range map[string][]string{
		"idemgate":   {"FROM idempotency_claims c LEFT JOIN outbox o ON o.operation_id = c.operation_id"},
		"syncoutbox": {"FROM sync_claims c LEFT JOIN so_outbox o ON o.operation_id = c.operation_id"},
	} {
		q := schemas[schema].runClaims()
		for _, w := range want {
			if !strings.Contains(q, w) {
				t.Errorf("%s: %q lacks %q", schema, q, w)
			}
		}
	}
}

func TestHogSlicesSplitThePeriod(t *testing.T) {
	for _, tc := range []struct {
		share      float64
		busy, idle time.Duration
	}{
		{0.5, 5 * time.Millisecond, 5 * time.Millisecond},
		{1, 10 * time.Millisecond, 0},
		{0.25, 2500 * time.Microsecond, 7500 * time.Microsecond},
	} {
		busy, idle := hogSlices(tc.share, 10*time.Millisecond)
		if busy != tc.busy || idle != tc.idle {
			t.Errorf("share %g: busy %v idle %v, want %v and %v", tc.share, busy, idle, tc.busy, tc.idle)
		}
	}
}

// The hog at half a core must not take a whole one: over its run it uses
// at most about half of the wall time in CPU (it may get less on a busy
// machine, never much more).
func TestHogTakesAboutItsShare(t *testing.T) {
	own := func() float64 {
		u, _, _, err := statTimes(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	before, start := own(), time.Now()
	hog(context.Background(), 0.5, 500*time.Millisecond)
	wall, cpu := time.Since(start).Seconds(), own()-before
	if wall < 0.5 {
		t.Fatalf("the hog stopped after %.2fs, before its 0.5s", wall)
	}
	if cpu > 0.75*wall {
		t.Fatalf("the hog at share 0.5 used %.2fs of CPU in %.2fs", cpu, wall)
	}
}
