package sqldb

import "github.com/prometheus/client_golang/prometheus"

// TxMetrics counts what the transaction runner does about serialization
// failures: each retry, and each transaction that gave up after
// maxRetries. A healthy deployment retries rarely and never gives up.
type TxMetrics struct {
	retries *prometheus.CounterVec
	gaveUp  *prometheus.CounterVec
}

// NewTxMetrics registers the counters on reg (when not nil).
func NewTxMetrics(reg prometheus.Registerer) (*TxMetrics, error) {
	m := &TxMetrics{
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
		for _, c := range []prometheus.Collector{m.retries, m.gaveUp} {
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
// as 0 rather than as a missing series.
func (db *DB) initMetrics() {
	if db.metrics != nil {
		db.metrics.retries.WithLabelValues(db.Name)
		db.metrics.gaveUp.WithLabelValues(db.Name)
	}
}
