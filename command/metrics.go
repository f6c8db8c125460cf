package command

import "github.com/prometheus/client_golang/prometheus"

// metrics are the counters a payment team watches on the API.
type metrics struct {
	accepted  *prometheus.CounterVec
	replayed  *prometheus.CounterVec
	conflicts *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	inFlight  prometheus.Gauge
	// claimGroups observes how many claims each claim transaction made.
	claimGroups prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_commands_accepted_total", Help: "Commands claimed and answered 202.",
		}, []string{"operation"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_commands_replayed_total", Help: "Retries answered from the claim (pending 202 or stored response).",
		}, []string{"operation", "state"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_idempotency_conflicts_total", Help: "Retries refused because the key was reused with a different request.",
		}, []string{"operation", "kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_requests_rejected_total", Help: "Requests refused before the claim, by status.",
		}, []string{"status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idemgate_requests_in_flight", Help: "POST requests being handled.",
		}),
		claimGroups: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "idemgate_claim_group_size",
			Help:    "Claims made per claim transaction (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
	}
	reg.MustRegister(m.accepted, m.replayed, m.conflicts, m.rejected, m.inFlight, m.claimGroups)
	return m
}
