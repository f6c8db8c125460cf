package hostile

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// TestHungDatabaseAnswers503 (finding 3): the database hangs (every
// PostgreSQL process stopped with SIGSTOP) under a running serve and
// project. POST, GET and /readyz answer 503 with Retry-After within 3 s
// (IDEMGATE_DB_TIMEOUT is 2 s) instead of hanging, /healthz stays 200;
// after SIGCONT every accepted command completes, exactly once, and the
// refused ones are accepted when retried.
func TestHungDatabaseAnswers503(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	pg, s := newOwnStack(t)
	a := s.serve()
	s.Project()

	// Before: commands accepted, one completed payment to read.
	var accepted []string
	first, paymentPath := a.completed("before-0")
	accepted = append(accepted, first)
	for i := 1; i < 30; i++ {
		r := a.postPayment(fmt.Sprintf("before-%d", i), payment)
		if r.Status != 202 {
			t.Fatalf("POST before the hang: %v", r)
		}
		accepted = append(accepted, r.Header.Get("Location"))
	}

	pg.freeze()
	frozenAt := time.Now()
	type probe struct {
		what, method, path, key string
		want                    int
	}
	var probes []probe
	for i := range 16 {
		probes = append(probes, probe{"POST /v1/payments", "POST", "/v1/payments", fmt.Sprintf("during-%d", i), 503})
	}
	for i := range 6 {
		probes = append(probes, probe{"GET /v1/operations/{id}", "GET", accepted[i], "", 503})
	}
	for range 4 {
		probes = append(probes, probe{"GET /v1/payments/{id}", "GET", paymentPath, "", 503},
			probe{"GET /readyz", "GET", "/readyz", "", 503}, probe{"GET /healthz", "GET", "/healthz", "", 200})
	}
	replies := make([]testenv.Reply, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.method == "POST" {
				replies[i] = a.postPayment(p.key, payment)
			} else {
				replies[i] = a.get(p.path)
			}
		}()
	}
	wg.Wait()
	slowest := map[string]time.Duration{}
	for i, p := range probes {
		r := replies[i]
		slowest[p.what] = max(slowest[p.what], r.Took)
		if r.Err != nil || r.Status != p.want {
			t.Errorf("%s while the database hangs: %v, want %d", p.what, r, p.want)
			continue
		}
		if p.want == 503 && r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", p.what)
		}
		if r.Took > 3*time.Second {
			t.Errorf("%s answered after %v, want within 3s", p.what, r.Took)
		}
	}
	t.Logf("while PostgreSQL hangs (SIGSTOP), slowest answers: %v", slowest)
	// Keep it hung a little longer: requests keep failing fast, not piling up.
	for time.Since(frozenAt) < 5*time.Second {
		if r := a.get("/readyz"); r.Status != 503 || r.Took > 3*time.Second {
			t.Errorf("GET /readyz while the database hangs: %v", r)
		}
	}
	pg.thaw()
	thawedAt := time.Now()

	a.WaitReady(a.Base, 30*time.Second)
	ready := time.Since(thawedAt)
	for i := range 16 {
		r := a.postPayment(fmt.Sprintf("during-%d", i), payment)
		if r.Status != 202 {
			t.Fatalf("POST retried after the hang: %v", r)
		}
		accepted = append(accepted, r.Header.Get("Location"))
	}
	for _, loc := range accepted {
		a.waitCompleted(loc, 60*time.Second)
	}
	t.Logf("after SIGCONT: ready again in %v; all %d accepted commands completed %v after SIGCONT",
		ms(ready), len(accepted), ms(time.Since(thawedAt)))
	if got := s.Count(`SELECT count(*) FROM payments`); got != len(accepted) {
		t.Fatalf("payments = %d, want %d (one per accepted command)", got, len(accepted))
	}
}
