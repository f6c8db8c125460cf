package command

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

func newTestClaimer(t *testing.T, concurrency int) (*claimer, prometheus.Histogram) {
	t.Helper()
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "groups", Buckets: []float64{1, 2, 4, 8, 16, 32, 64}})
	return newClaimer(store.New(db, 0), concurrency, DefaultClaimSpillAfter, 64, 5*time.Second, h), h
}

func claimReq(key string) idemgate.ClaimRequest {
	return idemgate.ClaimRequest{Tenant: "t", Operation: "o", Key: key, Fingerprint: []byte(key), Request: []byte(`{}`), Retention: time.Hour}
}

// claimAll claims reqs concurrently and returns the results in order.
func claimAll(c *claimer, reqs []idemgate.ClaimRequest) ([]idemgate.Claim, []error) {
	out, errs := make([]idemgate.Claim, len(reqs)), make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = c.claim(context.Background(), r)
		}()
	}
	wg.Wait()
	return out, errs
}

func groupStats(t *testing.T, h prometheus.Histogram) (transactions uint64, claims float64) {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

func TestClaimerGroupsConcurrentClaims(t *testing.T) {
	t.Run("OKEachGetsItsOwnClaim", func(t *testing.T) {
		c, h := newTestClaimer(t, 1)
		reqs := make([]idemgate.ClaimRequest, 200)
		for i := range reqs {
			reqs[i] = claimReq(fmt.Sprintf("k-%d", i))
		}
		out, errs := claimAll(c, reqs)
		ids := map[string]bool{}
		for i, cl := range out {
			if errs[i] != nil || !cl.Inserted || string(cl.Fingerprint) != reqs[i].Key {
				t.Fatalf("claim %d: %+v, %v", i, cl, errs[i])
			}
			ids[cl.OperationID] = true
		}
		if len(ids) != len(reqs) {
			t.Fatalf("%d operation ids for %d claims", len(ids), len(reqs))
		}
		txs, n := groupStats(t, h)
		if n != 200 || txs >= 200 {
			t.Fatalf("%d transactions for %v claims: concurrent claims did not share transactions", txs, n)
		}
		t.Logf("200 concurrent claims in %d transactions", txs)
	})
	t.Run("OKRepeatedKeyClaimedOnce", func(t *testing.T) {
		c, _ := newTestClaimer(t, 1)
		reqs := make([]idemgate.ClaimRequest, 50)
		for i := range reqs {
			reqs[i] = claimReq("same")
		}
		out, errs := claimAll(c, reqs)
		inserted := 0
		for i, cl := range out {
			if errs[i] != nil || cl.OperationID != out[0].OperationID {
				t.Fatalf("claim %d: %+v, %v (first: %s)", i, cl, errs[i], out[0].OperationID)
			}
			if cl.Inserted {
				inserted++
			}
		}
		if inserted != 1 {
			t.Fatalf("%d requests inserted the key, want 1", inserted)
		}
	})
	t.Run("ErrOnlyTheFaultyRequestFails", func(t *testing.T) {
		c, _ := newTestClaimer(t, 1)
		reqs := make([]idemgate.ClaimRequest, 40)
		for i := range reqs {
			reqs[i] = claimReq(fmt.Sprintf("g-%d", i))
		}
		reqs[17].Fingerprint = nil // NOT NULL violation: fails its whole group
		out, errs := claimAll(c, reqs)
		for i := range reqs {
			if i == 17 {
				if errs[i] == nil {
					t.Fatal("the faulty claim succeeded")
				}
				continue
			}
			if errs[i] != nil || !out[i].Inserted {
				t.Fatalf("claim %d failed with the faulty one: %v", i, errs[i])
			}
		}
	})
}
