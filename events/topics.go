package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topics names idemgate's three topics.
type Topics struct {
	Commands   string // accepted commands, keyed by idempotency identity
	Results    string // recorded outcomes, published by the outbox relay
	DeadLetter string // events whose projection failed for good
}

// DefaultTopicPrefix names the topics when no prefix is set: the
// product's name, so that they are recognisable among a cluster's others.
const DefaultTopicPrefix = "idemgate"

// TopicsWithPrefix returns the standard topics under a prefix
// (DefaultTopicPrefix when empty). Tests use their own prefix each.
func TopicsWithPrefix(prefix string) Topics {
	if prefix == "" {
		prefix = DefaultTopicPrefix
	}
	return Topics{
		Commands:   prefix + ".commands",
		Results:    prefix + ".results",
		DeadLetter: prefix + ".deadletter",
	}
}

// All lists the topics.
func (t Topics) All() []string { return []string{t.Commands, t.Results, t.DeadLetter} }

// TopicSettings is how EnsureTopics creates the topics.
type TopicSettings struct {
	// Partitions of each topic.
	Partitions int32
	// Replication is each partition's replication factor; 0 means
	// automatic: min(3, the brokers in the cluster's metadata).
	Replication int16
	// MinInsync is the topics' min.insync.replicas; 0 means automatic: 2
	// when the replication factor is 3 or more (an acks=all write is then
	// on two brokers before it is acknowledged, and one broker may be lost
	// without losing it or refusing writes), else the broker's default.
	MinInsync int
	// CommandsRetention is the commands topic's retention.ms; 0 leaves
	// the broker's default. It must stay below how long the projectors
	// keep their dedup records (roles set the dedup window less a day), so
	// that a consumer group reset to the start of the topic finds a dedup
	// record for every event it can still redeliver.
	CommandsRetention time.Duration
}

// Resolve fills the automatic settings for a cluster of the given number
// of brokers.
func (s TopicSettings) Resolve(brokers int) TopicSettings {
	if s.Replication == 0 {
		s.Replication = int16(max(1, min(3, brokers)))
	}
	if s.MinInsync == 0 && s.Replication >= 3 {
		s.MinInsync = 2
	}
	return s
}

// configs are the configs CreateTopics sets on a topic (the commands
// topic when commands); nil leaves the broker's defaults.
func (s TopicSettings) configs(commands bool) map[string]*string {
	c := map[string]*string{}
	if s.MinInsync != 0 {
		c["min.insync.replicas"] = kadm.StringPtr(strconv.Itoa(s.MinInsync))
	}
	if commands && s.CommandsRetention > 0 {
		c["retention.ms"] = kadm.StringPtr(strconv.FormatInt(s.CommandsRetention.Milliseconds(), 10))
	}
	if len(c) == 0 {
		return nil
	}
	return c
}

// EnsureTopics creates the topics that do not exist yet, under settings
// whose automatic parts are resolved against the brokers in the cluster's
// metadata (a broker down at that moment is not counted: a platform team
// that knows its cluster sets the replication factor). Existing topics are
// left as they are, also when the client may not create topics (a
// platform team created them and granted only Describe, Read and Write).
// A broker's refusal of the client (SASL, TLS, ACLs) is a *RefusedError.
// It returns the settings it resolved.
func EnsureTopics(ctx context.Context, client *kgo.Client, t Topics, settings TopicSettings) (TopicSettings, error) {
	adm := kadm.NewClient(client)
	brokers := 0
	if settings.Replication == 0 {
		meta, err := adm.BrokerMetadata(ctx)
		if err != nil {
			return settings, refusedOr(fmt.Errorf("events: describe the cluster: %w", err))
		}
		brokers = len(meta.Brokers)
	}
	settings = settings.Resolve(brokers)
	if settings.MinInsync > int(settings.Replication) {
		return settings, fmt.Errorf("events: min.insync.replicas %d exceeds the replication factor %d: no acks=all write could succeed",
			settings.MinInsync, settings.Replication)
	}
	var created []kadm.CreateTopicResponse
	for _, topics := range [][]string{{t.Commands}, {t.Results, t.DeadLetter}} {
		resp, err := adm.CreateTopics(ctx, settings.Partitions, settings.Replication, settings.configs(topics[0] == t.Commands), topics...)
		if err != nil {
			return settings, refusedOr(fmt.Errorf("events: create topics: %w", err))
		}
		created = append(created, resp.Sorted()...)
	}
	var denied []string
	for _, r := range created {
		switch {
		case r.Err == nil, errors.Is(r.Err, kerr.TopicAlreadyExists):
		case errors.Is(r.Err, kerr.TopicAuthorizationFailed), errors.Is(r.Err, kerr.ClusterAuthorizationFailed):
			denied = append(denied, r.Topic)
		default:
			return settings, refusedOr(fmt.Errorf("events: create topic %s: %w", r.Topic, r.Err))
		}
	}
	if len(denied) == 0 {
		return settings, nil
	}
	listed, err := adm.ListTopics(ctx, denied...)
	if err != nil {
		return settings, refusedOr(fmt.Errorf("events: describe topics: %w", err))
	}
	for _, topic := range denied {
		if d, ok := listed[topic]; !ok || d.Err != nil {
			return settings, &RefusedError{Cause: fmt.Sprintf("topic %s does not exist and the broker's ACLs deny creating it", topic),
				Check: "that the topics exist, or the user's Create ACL", Err: kerr.TopicAuthorizationFailed}
		}
	}
	return settings, nil
}

// refusedOr returns err as a *RefusedError when it is one, else err.
func refusedOr(err error) error {
	if r := Refused(err); r != nil {
		return r
	}
	return err
}
