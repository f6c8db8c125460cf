package consumer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

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
	cfg := Config{ClientOptions: []kgo.Opt{kgo.SeedBrokers(brokers...)}, Group: "g5", Topics: []string{topic},
		IsPermanent: func(err error) bool { return err == errPermanent },
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

// TestRunnerReportsNoLagOnceCaughtUp: once every record of the partition
// is handled, the lag gauge of the group's partition reads 0. The gauge is
// set before the batch's offsets are committed, so once offset 3 is
// committed it must already read 0.
func TestRunnerReportsNoLagOnceCaughtUp(t *testing.T) {
	brokers := newCluster(t, "a", "b", "c")
	reg := prometheus.NewRegistry()
	cfg := Config{ClientOptions: []kgo.Opt{kgo.SeedBrokers(brokers...)}, Group: "g6", Topics: []string{topic}, Registry: reg,
		OnPoison: func(context.Context, *kgo.Record, error) error { return nil }}
	var handled atomic.Int32 // the group exists once a record is handled: committed can ask for its offsets
	h := func(context.Context, *kgo.Record) error { handled.Add(1); return nil }
	runUntil(t, cfg, h, func() bool { return handled.Load() == 3 && committed(t, brokers, "g6") == 3 })
	if lag, ok := lagOf(t, reg, "g6", topic, "0"); !ok || lag != 0 {
		t.Fatalf("lag gauge %v (set: %v), want 0 once caught up", lag, ok)
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
