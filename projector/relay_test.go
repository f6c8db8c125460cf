package projector

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// TestRelayKeepsOutcomesUnsentWhileProduceFails: the relay's Kafka (a
// kfake cluster of the test's own, whatever KAFKA_BROKERS says, since
// only kfake lets a test refuse produce requests) refuses every produce
// request while an outcome waits in the outbox. The relay's attempt must
// fail and leave the outcome unsent; once Kafka takes produce requests
// again, the next attempt publishes it, and only then is it marked sent.
// Marking it sent before the produce succeeded would lose the result
// event for good.
func TestRelayKeepsOutcomesUnsentWhileProduceFails(t *testing.T) {
	ctx := context.Background()
	p, db := effects(t)
	rec := claimAndRecord(t, db, "effects.add")
	if err := p.Handle(ctx, rec); err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "results"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	// The outage: every produce request is answered NOT_ENOUGH_REPLICAS
	// (the in-sync replicas are down), until it is lifted.
	var down atomic.Bool
	var refused atomic.Int32
	down.Store(true)
	c.ControlKey(kmsg.Produce.Int16(), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !down.Load() {
			return nil, nil, false
		}
		req := kr.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		refused.Add(1)
		return resp, nil, true
	})
	// The production client's options, with few retries so that the
	// refused produce fails back within the test rather than after the
	// 30 s delivery timeout (and without the 5 s pause between the
	// metadata refreshes a refused produce asks for).
	cl, err := kgo.NewClient(append(testenv.KafkaOptions(t, c.ListenAddrs()), kgo.RecordRetries(2),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }), kgo.MetadataMinAge(50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	st := store.New(db, 0)
	relay, err := NewRelay(RelayConfig{Store: st, Producer: events.NewProducer(cl), Topic: "results"})
	if err != nil {
		t.Fatal(err)
	}
	unsent := func() int {
		outs, err := st.UnsentResponses(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(outs)
	}
	if n := unsent(); n != 1 {
		t.Fatalf("%d unsent outcomes before the relay ran, want 1", n)
	}

	for attempt := range 2 {
		n, err := relay.RelayOnce(ctx)
		if err == nil || !errors.Is(err, kerr.NotEnoughReplicas) {
			t.Fatalf("attempt %d during the outage: published %d, err %v; want NOT_ENOUGH_REPLICAS", attempt+1, n, err)
		}
		if u := unsent(); u != 1 {
			t.Fatalf("after a failed produce (attempt %d), %d outcomes unsent, want 1: the outcome was marked sent but never published", attempt+1, u)
		}
	}
	if refused.Load() == 0 {
		t.Fatal("no produce request was refused (the test's premise)")
	}

	down.Store(false)
	if n, err := relay.RelayOnce(ctx); err != nil || n != 1 {
		t.Fatalf("after the outage: published %d, err %v; want 1, nil", n, err)
	}
	if u := unsent(); u != 0 {
		t.Fatalf("%d outcomes unsent after a successful relay, want 0", u)
	}
	// The result event is on the topic, once.
	consumer, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("results"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < 1 {
		fs := consumer.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatal("no result event on the topic within 10s")
		}
		got = append(got, fs.Records()...)
	}
	env, err := events.Decode(got[0])
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != events.TypeCommandCompleted || len(got) != 1 {
		t.Fatalf("%d records on the results topic, the first of type %q; want one %q", len(got), env.Type, events.TypeCommandCompleted)
	}
}
