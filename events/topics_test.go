package events

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTopicSettingsResolve checks the automatic replication factor,
// min(3, brokers), and min.insync.replicas, 2 with three copies or more,
// and that explicit settings are kept.
func TestTopicSettingsResolve(t *testing.T) {
	for name, tc := range map[string]struct {
		in      TopicSettings
		brokers int
		rf      int16
		isr     int
	}{
		"OneBroker":       {TopicSettings{}, 1, 1, 0},
		"TwoBrokers":      {TopicSettings{}, 2, 2, 0},
		"ThreeBrokers":    {TopicSettings{}, 3, 3, 2},
		"FiveBrokers":     {TopicSettings{}, 5, 3, 2},
		"NoBrokerSeen":    {TopicSettings{}, 0, 1, 0},
		"ExplicitRF":      {TopicSettings{Replication: 5}, 0, 5, 2},
		"ExplicitRFLow":   {TopicSettings{Replication: 2}, 5, 2, 0},
		"ExplicitInsync":  {TopicSettings{MinInsync: 3}, 5, 3, 3},
		"ExplicitBoth":    {TopicSettings{Replication: 4, MinInsync: 1}, 1, 4, 1},
		"InsyncOnOneCopy": {TopicSettings{MinInsync: 1}, 1, 1, 1},
	} {
		t.Run(name, func(t *testing.T) {
			got := tc.in.Resolve(tc.brokers)
			if got.Replication != tc.rf || got.MinInsync != tc.isr {
				t.Fatalf("Resolve(%d) of %+v = replication %d, min insync %d; want %d, %d",
					tc.brokers, tc.in, got.Replication, got.MinInsync, tc.rf, tc.isr)
			}
		})
	}
}

// TestEnsureTopicsReplication creates the topics on kfake clusters of one
// and three brokers and reads back each partition's replicas and the
// topics' min.insync.replicas, and the commands topic's retention (below
// the dedup window), the others left at the broker's default. (cmd/idemgate's TestKafkaCluster checks the
// same on a real three-node cluster.)
func TestEnsureTopicsReplication(t *testing.T) {
	for _, tc := range []struct {
		brokers int
		rf      int
		isr     string // "" = not set on the topic (the broker's default)
	}{{1, 1, ""}, {3, 3, "2"}} {
		t.Run(fmt.Sprintf("%dBrokers", tc.brokers), func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(tc.brokers))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			ctx := context.Background()
			topics := TopicsWithPrefix("t")
			got, err := EnsureTopics(ctx, client, topics, TopicSettings{Partitions: 2, CommandsRetention: 7 * 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if int(got.Replication) != tc.rf {
				t.Fatalf("resolved replication %d, want %d", got.Replication, tc.rf)
			}
			adm := kadm.NewClient(client)
			described, err := adm.ListTopics(ctx, topics.All()...)
			if err != nil {
				t.Fatal(err)
			}
			configs, err := adm.DescribeTopicConfigs(ctx, topics.All()...)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range topics.All() {
				d := described[name]
				if d.Err != nil || len(d.Partitions) != 2 {
					t.Fatalf("%s: %d partitions, %v", name, len(d.Partitions), d.Err)
				}
				for _, p := range d.Partitions {
					if len(p.Replicas) != tc.rf {
						t.Fatalf("%s/%d: replicas %v, want %d", name, p.Partition, p.Replicas, tc.rf)
					}
				}
				rc, err := configs.On(name, nil)
				if err != nil {
					t.Fatal(err)
				}
				isr, retention := "", ""
				for _, c := range rc.Configs {
					if c.Source != kmsg.ConfigSourceDynamicTopicConfig { // not set on the topic
						continue
					}
					switch c.Key {
					case "min.insync.replicas":
						isr = c.MaybeValue()
					case "retention.ms":
						retention = c.MaybeValue()
					}
				}
				if isr != tc.isr {
					t.Fatalf("%s: min.insync.replicas set on the topic = %q, want %q", name, isr, tc.isr)
				}
				if want := map[bool]string{true: "604800000", false: ""}[name == topics.Commands]; retention != want {
					t.Fatalf("%s: retention.ms set on the topic = %q, want %q", name, retention, want)
				}
			}
			// A second start leaves the topics as they are.
			if _, err := EnsureTopics(ctx, client, topics, TopicSettings{Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			// More in-sync replicas than copies is refused before creating anything.
			if _, err := EnsureTopics(ctx, client, TopicsWithPrefix("u"), TopicSettings{Partitions: 1, Replication: 1, MinInsync: 2}); err == nil {
				t.Fatal("min.insync.replicas 2 on one copy was accepted")
			}
		})
	}
}
