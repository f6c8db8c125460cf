package consumer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRunnerDisposesOfPoisonAfterFiveAttemptsByDefault: with MaxAttempts
// unset, a record failing permanently is tried five times, then disposed
// of, and the records behind it are handled.
func TestRunnerDisposesOfPoisonAfterFiveAttemptsByDefault(t *testing.T) {
	brokers := newCluster(t, "poison", "ok")
	var mu sync.Mutex
	attempts, poisoned, handled := 0, 0, 0
	h := func(_ context.Context, rec *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if string(rec.Value) == "poison" {
			attempts++
			return errPermanent
		}
		handled++
		return nil
	}
	cfg := Config{ClientOptions: seed(brokers), Group: "g5", Topics: []string{topic},
		IsPermanent: isPermanent,
		OnPoison: func(context.Context, *kgo.Record, error) error {
			mu.Lock()
			defer mu.Unlock()
			poisoned++
			return nil
		}}
	runUntil(t, cfg, h, func() bool { mu.Lock(); defer mu.Unlock(); return handled == 1 })
	if attempts != 5 || poisoned != 1 {
		t.Fatalf("attempts %d, poisoned %d; want 5 attempts, then poisoned once", attempts, poisoned)
	}
}

// TestRunnerReportsNoLagOnceCaughtUp: the lag gauge of the group's
// partition, measured at the broker, reads the records not yet committed:
// 3 before the runner handles any (its first measure), 0 once all three are
// handled and committed.
func TestRunnerReportsNoLagOnceCaughtUp(t *testing.T) {
	brokers := newCluster(t, "a", "b", "c")
	reg := prometheus.NewRegistry()
	cfg := Config{ClientOptions: seed(brokers), Group: "g6", Topics: []string{topic}, Registry: reg,
		LagInterval: 20 * time.Millisecond, OnPoison: func(context.Context, *kgo.Record, error) error { return nil }}
	release := make(chan struct{})
	var handled atomic.Int32
	var seen sync.Map // the gauge's values, as measured
	h := func(ctx context.Context, _ *kgo.Record) error {
		select { // the first record waits until the lag of 3 was measured
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		handled.Add(1)
		return nil
	}
	var once sync.Once
	runUntil(t, cfg, h, func() bool {
		lag, ok := lagOf(t, reg, "g6", topic, "0")
		if ok {
			seen.Store(lag, true)
		}
		if ok && lag == 3 {
			once.Do(func() { close(release) })
		}
		return handled.Load() == 3 && committed(t, brokers, "g6") == 3 && ok && lag == 0
	})
	if _, ok := seen.Load(float64(3)); !ok {
		t.Fatal("the gauge never read 3 before the records were handled")
	}
}

// lagOf reads the lag gauge of one partition; ok is false before it is set.
func lagOf(t *testing.T, reg *prometheus.Registry, group, topic, partition string) (lag float64, ok bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "idemgate_consumer_lag_records" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if fmt.Sprint(labels) == fmt.Sprint(map[string]string{"group": group, "topic": topic, "partition": partition}) {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}
