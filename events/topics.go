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

// TopicsWithPrefix returns the standard topics under a prefix; the
// default prefix is "idemgate". Tests use their own prefix each.
func TopicsWithPrefix(prefix string) Topics {
	if prefix == "" {
		prefix = "idemgate"
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
// left as they are. A broker's refusal of the client (SASL, TLS, ACLs) is
// a *RefusedError.
func EnsureTopics(ctx context.Context, client *kgo.Client, t Topics, partitions int32) error {
	adm := kadm.NewClient(client)
	resp, err := adm.CreateTopics(ctx, partitions, -1, nil, t.All()...)
	if err != nil {
		if r := Refused(err); r != nil {
			return r
		}
		return fmt.Errorf("events: create topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			err := fmt.Errorf("events: create topic %s: %w", r.Topic, r.Err)
			if r := Refused(err); r != nil {
				return r
			}
			return err
		}
	}
	return nil
}
