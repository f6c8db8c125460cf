package sqldb

import (
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// TxMetrics counts what the transaction runner does about serialization
// failures: each retry, and each transaction that gave up after
// maxRetries. A healthy deployment retries rarely and never gives up.
// It also reports the use of each pool opened with it (poolStats).
type TxMetrics struct {
	retries *prometheus.CounterVec
	gaveUp  *prometheus.CounterVec
	pools   *poolStats
}

// NewTxMetrics registers the counters on reg (when not nil).
func NewTxMetrics(reg prometheus.Registerer) (*TxMetrics, error) {
	m := &TxMetrics{
		pools: &poolStats{pools: map[string]*pgxpool.Pool{}},
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_sql_tx_retries_total",
			Help: "Transactions run again after a serialization failure or a deadlock, by pool.",
		}, []string{"pool"}),
		gaveUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_sql_tx_gave_up_total",
			Help: "Transactions abandoned after too many serialization failures, by pool.",
		}, []string{"pool"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.retries, m.gaveUp, m.pools} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (db *DB) countRetry() {
	if db.metrics != nil {
		db.metrics.retries.WithLabelValues(db.Name).Inc()
	}
}

func (db *DB) countGaveUp() {
	if db.metrics != nil {
		db.metrics.gaveUp.WithLabelValues(db.Name).Inc()
	}
}

// initMetrics exports the pool's counters at 0, so that "no retry" reads
// as 0 rather than as a missing series, and reports the pool's use.
func (db *DB) initMetrics() {
	if db.metrics != nil {
		db.metrics.retries.WithLabelValues(db.Name)
		db.metrics.gaveUp.WithLabelValues(db.Name)
		db.metrics.pools.add(db.Name, db.Pool)
	}
}

// The pools' use, read from pgxpool's statistics when scraped: how many
// connections hold a transaction or a statement now, out of how many,
// and how often and how long a caller waited for one. A pool whose
// connections are all in use while its waits grow is exhausted: what
// waits on it stalls (a stuck projector), while the other pools of the
// process answer (docs/RELIABILITY.md, finding 9).
var (
	poolInUse = prometheus.NewDesc("idemgate_sql_pool_connections_in_use",
		"Connections of the pool in use now (each holds a transaction or a statement in flight), by pool.", []string{"pool"}, nil)
	poolMax = prometheus.NewDesc("idemgate_sql_pool_max_connections",
		"The most connections the pool opens, by pool.", []string{"pool"}, nil)
	poolWaits = prometheus.NewDesc("idemgate_sql_pool_acquire_waits_total",
		"Acquisitions of a connection that found none idle and waited for one to be returned or opened (counted once they have it), by pool.", []string{"pool"}, nil)
	poolWaited = prometheus.NewDesc("idemgate_sql_pool_acquire_wait_seconds_total",
		"Time spent in those waits, by pool.", []string{"pool"}, nil)
)

// poolStats is the collector of the pools opened with a TxMetrics.
type poolStats struct {
	mu    sync.Mutex
	pools map[string]*pgxpool.Pool
}

func (p *poolStats) add(name string, pool *pgxpool.Pool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pools[name] = pool
}

func (p *poolStats) remove(name string, pool *pgxpool.Pool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pools[name] == pool {
		delete(p.pools, name)
	}
}

func (p *poolStats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolInUse, poolMax, poolWaits, poolWaited} {
		ch <- d
	}
}

func (p *poolStats) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, pool := range p.pools {
		st := pool.Stat()
		ch <- prometheus.MustNewConstMetric(poolInUse, prometheus.GaugeValue, float64(st.AcquiredConns()), name)
		ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(st.MaxConns()), name)
		ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(st.EmptyAcquireCount()), name)
		ch <- prometheus.MustNewConstMetric(poolWaited, prometheus.CounterValue, st.EmptyAcquireWaitTime().Seconds(), name)
	}
}
