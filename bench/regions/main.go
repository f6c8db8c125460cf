// Command regions measures two regions started by scripts/regions.sh
// (docs/MULTI-REGION.md, "Figures"): the accept latency (POST to 202)
// in the region near the database and in the far one, each region's
// throughput in a closed loop at the same concurrency, and the time from
// losing region A to the last command it had accepted completing.
//
//	scripts/regions.sh start > /tmp/regions.env && . /tmp/regions.env
//	go run ./bench/regions -a $REGION_A_URL -b $REGION_B_URL \
//	    -db 'postgres://postgres@127.0.0.1:24100/idemgate?sslmode=disable'
//
// scripts/regions-bench.sh does all of it. The recovery step runs
// -kill (scripts/regions.sh kill A) under load on A, then waits, with A
// down, until every command A had accepted and not completed is
// completed (by B's sweeper and projector), and finally runs -restart.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	a := flag.String("a", "http://127.0.0.1:24130", "region A's API (near the database)")
	b := flag.String("b", "http://127.0.0.1:24140", "region B's API (far from the database)")
	db := flag.String("db", "postgres://postgres@127.0.0.1:24100/idemgate?sslmode=disable", "the shared database, directly")
	conns := flag.Int("conns", 16, "closed loop: clients at once")
	dur := flag.Duration("duration", 15*time.Second, "each region's closed loop")
	kill := flag.String("kill", "scripts/regions.sh kill A", "how region A is lost (empty: no recovery step)")
	restart := flag.String("restart", "scripts/regions.sh start-region A", "how region A comes back")
	within := flag.Duration("recover-within", 3*time.Minute, "how long to wait for the adoption")
	flag.Parse()
	run := fmt.Sprintf("rb%d", time.Now().Unix())
	ctx := context.Background()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conns}}

	ra := closedLoop(client, *a, run+"-a", *conns, *dur, nil)
	fmt.Printf("region A (near): %s\n", ra)
	rb := closedLoop(client, *b, run+"-b", *conns, *dur, nil)
	fmt.Printf("region B (far):  %s\n", rb)
	fmt.Printf("far/near: throughput %.2f, p50 %+v, p99 %+v\n", rb.rate()/ra.rate(),
		(rb.pct(50) - ra.pct(50)).Round(100*time.Microsecond), (rb.pct(99) - ra.pct(99)).Round(100*time.Microsecond))
	if *kill == "" {
		return
	}

	conn, err := pgx.Connect(ctx, *db)
	if err != nil {
		fail("database: %v", err)
	}
	defer conn.Close(ctx)
	// Load on A, then lose A under it.
	stop := make(chan struct{})
	done := make(chan result, 1)
	go func() { done <- closedLoop(client, *a, run+"-r", *conns, time.Hour, stop) }()
	time.Sleep(3 * time.Second) // the load before the loss: how long it runs, not a wait for an event
	lostAt := time.Now()
	if out, err := exec.Command("bash", "-c", *kill).CombinedOutput(); err != nil {
		fail("%s: %v\n%s", *kill, err, out)
	}
	close(stop)
	rl := <-done
	var accepted, pending int
	q := `SELECT count(*), count(*) FILTER (WHERE o.operation_id IS NULL)
	        FROM idempotency_claims c LEFT JOIN outbox o USING (operation_id) WHERE c.idem_key LIKE $1`
	if err := conn.QueryRow(ctx, q, run+"-r-%").Scan(&accepted, &pending); err != nil {
		fail("count: %v", err)
	}
	fmt.Printf("region A lost under load (%d accepted by A, %d of them not completed at the loss)\n", rl.n, pending)
	deadline := time.Now().Add(*within)
	left := pending
	for left > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if err := conn.QueryRow(ctx, q, run+"-r-%").Scan(&accepted, &left); err != nil {
			fail("count: %v", err)
		}
	}
	var last time.Time
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(o.created_at), now()) FROM idempotency_claims c
	        JOIN outbox o USING (operation_id) WHERE c.idem_key LIKE $1`, run+"-r-%").Scan(&last); err != nil {
		fail("last: %v", err)
	}
	if left > 0 {
		fmt.Printf("recovery: %d of %d commands still not completed %v after the loss, with A down\n", left, pending, *within)
	} else {
		fmt.Printf("recovery: the last of A's %d unfinished commands completed %v after the loss (A still down)\n",
			pending, last.Sub(lostAt).Round(time.Millisecond))
	}
	if *restart != "" {
		t := time.Now()
		if out, err := exec.Command("bash", "-c", *restart).CombinedOutput(); err != nil {
			fail("%s: %v\n%s", *restart, err, out)
		}
		fmt.Printf("region A back in %v\n", time.Since(t).Round(100*time.Millisecond))
		if left > 0 {
			for left > 0 && time.Since(t) < *within {
				time.Sleep(50 * time.Millisecond)
				if err := conn.QueryRow(ctx, q, run+"-r-%").Scan(&accepted, &left); err != nil {
					fail("count: %v", err)
				}
			}
			fmt.Printf("after A's return: %d still not completed, %v after the loss\n", left, time.Since(lostAt).Round(time.Millisecond))
		}
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "regions bench: "+format+"\n", args...)
	os.Exit(1)
}

// result is a closed loop's: the latencies of its 202s.
type result struct {
	n, errs int
	took    time.Duration
	lat     []time.Duration
}

func (r result) rate() float64 { return float64(r.n) / r.took.Seconds() }

func (r result) pct(p int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, len(r.lat)*p/100)]
}

func (r result) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("%d commands accepted in %v, %.0f/s; accept latency p50 %s, p99 %s; %d errors",
		r.n, r.took.Round(100*time.Millisecond), r.rate(), ms(r.pct(50)), ms(r.pct(99)), r.errs)
}

// closedLoop runs conns clients, each sending a new payment as soon as
// the last got its 202, for dur or until stop is closed.
func closedLoop(client *http.Client, base, prefix string, conns int, dur time.Duration, stop <-chan struct{}) result {
	var mu sync.Mutex
	var res result
	var seq atomic.Int64
	end := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("%s-%d", prefix, seq.Add(1))
				body := fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"cus_%s"}`, 100+seq.Load()%900, key)
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/payments", bytes.NewBufferString(body))
				req.Header.Set("Authorization", "Bearer dev-key-a")
				req.Header.Set("Idempotency-Key", key)
				req.Header.Set("Content-Type", "application/json")
				t := time.Now()
				resp, err := client.Do(req)
				took := time.Since(t)
				ok := err == nil && resp.StatusCode == http.StatusAccepted
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				if ok {
					res.n++
					res.lat = append(res.lat, took)
				} else {
					res.errs++
				}
				mu.Unlock()
				if !ok && stop != nil {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		}()
	}
	wg.Wait()
	res.took = time.Since(start)
	slices.Sort(res.lat)
	return res
}
