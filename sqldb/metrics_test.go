package sqldb_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idemgate/idemgate/sqldb"
)

// TestPoolMetrics: a pool's use reads on the metrics under its name:
// connections in use out of its size, and an acquisition that found no
// idle connection (here: one had to be opened) counted as a wait; a
// closed pool is reported no more.
func TestPoolMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs PostgreSQL")
	}
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := sqldb.NewTxMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(ctx, env.NewDatabase(t), sqldb.Options{MaxConns: 2, Name: "p", Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	metric := func(name string) (float64, bool) {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			for _, s := range f.GetMetric() {
				if f.GetName() == name && len(s.GetLabel()) == 1 && s.GetLabel()[0].GetValue() == "p" {
					if g := s.GetGauge(); g != nil {
						return g.GetValue(), true
					}
					return s.GetCounter().GetValue(), true
				}
			}
		}
		return 0, false
	}
	want := func(name string, v float64) {
		t.Helper()
		if got, ok := metric(name); !ok || got != v {
			t.Fatalf("%s{pool=\"p\"} = %v (reported: %v), want %v", name, got, ok, v)
		}
	}
	want("idemgate_sql_pool_max_connections", 2)
	want("idemgate_sql_pool_connections_in_use", 0)
	waits, _ := metric("idemgate_sql_pool_acquire_waits_total")

	first, err := db.Pool.Acquire(ctx) // the idle connection Open used
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	want("idemgate_sql_pool_connections_in_use", 1)
	want("idemgate_sql_pool_acquire_waits_total", waits)
	second, err := db.Pool.Acquire(ctx) // none idle: waits for a new one
	if err != nil {
		t.Fatal(err)
	}
	want("idemgate_sql_pool_connections_in_use", 2)
	want("idemgate_sql_pool_acquire_waits_total", waits+1)
	second.Release()
	want("idemgate_sql_pool_connections_in_use", 1)

	first.Release()
	db.Close()
	if _, ok := metric("idemgate_sql_pool_connections_in_use"); ok {
		t.Fatal("a closed pool is still reported")
	}
}
