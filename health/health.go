// Package health serves what every role answers beside its work: /healthz
// (the process is alive), /readyz (its backends answer), /metrics
// (Prometheus, behind an optional bearer token), and the gauges of what
// only the database knows. It writes its refusals as RFC 9457 problems.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/internal/retry"
)

// Checker reports whether a dependency answers; /readyz asks each.
type Checker interface {
	Ping(ctx context.Context) error
}

// Dependency is a backend a role's readiness checks.
type Dependency struct {
	Name  string
	Check Checker
	// Required: the role cannot do its job without it. An optional one
	// that does not answer makes the role "degraded", still ready: the
	// API keeps claiming while Kafka is down (claims are durable, the
	// sweeper emits them later), so a probe must not take it out.
	Required bool
}

// LiveHandler answers /healthz: 200 {"status":"ok"} while the process
// serves HTTP at all. It checks no backend (that is /readyz), so that an
// outage does not get every process restarted.
func LiveHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// ReadyHandler answers /readyz. Ready (200): every required dependency
// answers within timeout; the body says "ready", or "degraded" when an
// optional one does not, and lists each one's state. Not ready (503, a
// problem with the same list and Retry-After): a required one does not.
// The checks run at once, so the answer comes within timeout.
func ReadyHandler(deps []Dependency, timeout time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		checks := make(map[string]string, len(deps))
		var mu sync.Mutex
		var wg sync.WaitGroup
		ready, degraded := true, false
		for _, d := range deps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				state := "ok"
				if err := d.Check.Ping(ctx); err != nil {
					state = "unreachable"
				}
				mu.Lock()
				defer mu.Unlock()
				checks[d.Name] = state
				if state != "ok" {
					if d.Required {
						ready = false
					} else {
						degraded = true
					}
				}
			}()
		}
		wg.Wait()
		if !ready {
			p := idemgate.NewProblem(http.StatusServiceUnavailable, idemgate.ProblemNotReady, "Not ready", "a dependency this role needs is not reachable")
			body, _ := json.Marshal(struct {
				*idemgate.Problem
				Checks map[string]string `json:"checks"`
			}{p, checks})
			w.Header().Set("Content-Type", idemgate.ContentTypeProblem)
			retry.SetAfter(w.Header(), time.Second)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write(body)
			return
		}
		status := "ready"
		if degraded {
			status = "degraded"
		}
		body, _ := json.Marshal(struct { // strings only: always encodes
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}{status, checks})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}
}
