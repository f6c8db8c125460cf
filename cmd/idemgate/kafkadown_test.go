package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// TestKafkaDownStillAccepts stops Kafka under a running stack: the API
// still answers 202 for new commands (the claim is SQL only), and once
// Kafka is back the sweeper emits them and they complete (I2). The broker
// is a kfake cluster of the test's own, with its log on disk, restarted on
// the same port and folder, whichever Kafka the other tests use. The port
// is held by the test throughout: refused while the broker is down, and
// never free for another process to take.
func TestKafkaDownStillAccepts(t *testing.T) {
	cluster := testenv.NewDiskKafka(t)
	brokers := cluster.Addr()
	s := startStack(t, "KAFKA_BROKERS", brokers, "IDEMGATE_LEASE", "1s", "IDEMGATE_SWEEP_INTERVAL", "200ms")
	s.brokers = []string{brokers}

	warm := s.postPayment("key-a", "before-outage", payment)
	s.waitCompleted("key-a", warm.Header.Get("Location"))

	cluster.Stop() // Kafka is down
	var locs []string
	for i := range 5 {
		r := s.postPayment("key-a", "during-outage-"+strconv.Itoa(i), payment)
		mustEqual(t, "status while Kafka is down", r.Status, 202)
		locs = append(locs, r.Header.Get("Location"))
	}
	// Past the lease the sweeper takes each command again (emit_attempts)
	// and fails to emit it: none completes.
	testenv.Eventually(t, 30*time.Second, "the sweeper retries the five commands", func() error {
		n := s.count(`SELECT count(*) FROM idempotency_claims WHERE idem_key LIKE 'during-outage-%' AND emit_attempts > 0`)
		return testenv.Check(n == 5, "%d of 5 taken by the sweeper", n)
	})
	mustEqual(t, "completed while Kafka is down", s.count(`SELECT count(*) FROM outbox`), 1)
	// The alerts' gauges see them (deploy/prometheus/alerts.yml).
	testenv.Eventually(t, 30*time.Second, "the gauge idemgate_pending_commands at 5", func() error {
		n, err := s.metric("idemgate_pending_commands")
		if err != nil {
			return err
		}
		age, err := s.metric("idemgate_pending_oldest_age_seconds")
		if err != nil {
			return err
		}
		return testenv.Check(n == 5 && age > 0, "idemgate_pending_commands %v, oldest age %v s", n, age)
	})

	cluster.Start() // Kafka is back, with its log
	for _, loc := range locs {
		s.waitCompleted("key-a", loc)
	}
	mustEqual(t, "payments", s.count(`SELECT count(*) FROM payments`), 6)
	testenv.Eventually(t, 30*time.Second, "the gauge idemgate_pending_commands back at 0", func() error {
		n, err := s.metric("idemgate_pending_commands")
		if err != nil {
			return err
		}
		return testenv.Check(n == 0, "idemgate_pending_commands %v", n)
	})
}
