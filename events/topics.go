package events

import (
	"context"
	"errors"
	"fmt"

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

// EnsureTopics creates the topics that do not exist yet; existing ones are
// left as they are, also when the client may not create topics (a
// platform team created them and granted only Describe, Read and Write).
// A broker's refusal of the client (SASL, TLS, ACLs) is a *RefusedError.
func EnsureTopics(ctx context.Context, client *kgo.Client, t Topics, partitions int32) error {
	adm := kadm.NewClient(client)
	resp, err := adm.CreateTopics(ctx, partitions, -1, nil, t.All()...)
	if err != nil {
		return refusedOr(fmt.Errorf("events: create topics: %w", err))
	}
	var denied []string
	for _, r := range resp.Sorted() {
		switch {
		case r.Err == nil, errors.Is(r.Err, kerr.TopicAlreadyExists):
		case errors.Is(r.Err, kerr.TopicAuthorizationFailed), errors.Is(r.Err, kerr.ClusterAuthorizationFailed):
			denied = append(denied, r.Topic)
		default:
			return refusedOr(fmt.Errorf("events: create topic %s: %w", r.Topic, r.Err))
		}
	}
	if len(denied) == 0 {
		return nil
	}
	listed, err := adm.ListTopics(ctx, denied...)
	if err != nil {
		return refusedOr(fmt.Errorf("events: describe topics: %w", err))
	}
	for _, topic := range denied {
		if d, ok := listed[topic]; !ok || d.Err != nil {
			return &RefusedError{Cause: fmt.Sprintf("topic %s does not exist and the broker's ACLs deny creating it", topic),
				Check: "that the topics exist, or the user's Create ACL", Err: kerr.TopicAuthorizationFailed}
		}
	}
	return nil
}

// refusedOr returns err as a *RefusedError when it is one, else err.
func refusedOr(err error) error {
	if r := Refused(err); r != nil {
		return r
	}
	return err
}
