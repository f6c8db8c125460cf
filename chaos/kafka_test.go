package chaos

// The test's own view of the topics: reading a topic whole, duplicating
// the command events (as re-emissions and redeliveries do), and the
// projector group's lag.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readTopic reads every record of topic from the start to the end offsets
// it has when called.
func (r *run) readTopic(ctx context.Context, topic string) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(r.brokers, ",")...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	var lerr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			lerr = o.Err
		}
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if lerr != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, lerr)
	}
	var out []*kgo.Record
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for len(want) > 0 {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			return out, fmt.Errorf("read %d records of %s; partitions not read to their end: %v", len(out), topic, want)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			end, ok := want[rec.Partition]
			if !ok || rec.Offset >= end {
				return // written after the end offsets were taken
			}
			out = append(out, rec)
			if rec.Offset >= end-1 {
				delete(want, rec.Partition)
			}
		})
	}
	return out, nil
}

// duplicateCommands produces an exact copy (key, value, headers) of every
// record of the commands topic, as the sweeper's re-emissions and the
// consumer's redeliveries do: every command is then delivered at least
// twice and its effect must still be applied once (I3).
func (r *run) duplicateCommands() {
	r.waitOutagesOver("the duplicate delivery")
	var err error
	for attempt := 0; attempt < 8; attempt++ { // the broker may be restarting
		if attempt > 0 {
			time.Sleep(5 * time.Second) // a retry's pause after a failed attempt, not a wait
		}
		var n int
		if n, err = r.produceCopies(); err == nil {
			r.mu.Lock()
			r.injected += n
			r.mu.Unlock()
			r.logf("CHAOS: every command event so far delivered again: %d copies produced to %s.commands", n, r.prefix)
			return
		}
	}
	r.fail("harness", "duplicate the command events: %v", err)
}

func (r *run) produceCopies() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs, err := r.readTopic(ctx, r.prefix+".commands")
	if err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(r.brokers, ",")...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	copies := make([]*kgo.Record, len(recs))
	for i, rec := range recs {
		copies[i] = &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: rec.Headers}
	}
	if err := cl.ProduceSync(ctx, copies...).FirstErr(); err != nil {
		return 0, err
	}
	return len(copies), nil
}

// groupLag is how many records of the commands topic the projectors'
// group has not committed yet.
func (r *run) groupLag(ctx context.Context) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(r.brokers, ",")...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := r.prefix + ".commands"
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	committed, err := adm.FetchOffsets(ctx, r.group)
	if err != nil {
		return 0, err
	}
	var lag int64
	var lerr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			lerr = o.Err
			return
		}
		var at int64
		if c, ok := committed.Lookup(topic, o.Partition); ok && c.Err == nil && c.At > 0 {
			at = c.At
		}
		lag += max(0, o.Offset-at)
	})
	return lag, lerr
}
