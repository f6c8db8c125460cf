package consumer

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/idemgate/idemgate/internal/tick"
)

// measureLag sets the lag gauge every LagInterval, starting at once: for
// each partition of the group's topics, its log-end offset minus the
// group's committed offset, or minus its log-start offset while the group
// has committed nothing there (a group that has not joined yet, or is
// stuck before its first commit, shows its whole backlog). It is measured
// at the broker, so a backlog shows whether or not it is being fetched.
func (r *Runner) measureLag(ctx context.Context) {
	adm := kadm.NewClient(r.client)
	sample := func(ctx context.Context) { r.sampleLag(ctx, adm) }
	sample(ctx)
	tick.Every(ctx, r.cfg.LagInterval, sample)
}

// sampleLag sets the gauge of every partition it could measure; a
// partition whose offsets the broker could not list keeps its last value.
func (r *Runner) sampleLag(ctx context.Context, adm *kadm.Client) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LagInterval)
	defer cancel()
	lags, err := GroupLag(ctx, adm, r.cfg.Group, r.cfg.Topics...)
	if err != nil {
		return
	}
	for _, l := range lags {
		r.lag.WithLabelValues(r.cfg.Group, l.Topic, strconv.Itoa(int(l.Partition))).Set(float64(l.Lag))
	}
}

// PartitionLag is how many records of one partition a group has yet to
// commit past.
type PartitionLag struct {
	Topic     string
	Partition int32
	Lag       int64
}

// GroupLag measures group's lag on each partition of topics whose offsets
// the broker could list: its log-end offset minus the group's committed
// offset, or minus its log-start offset where the group has committed
// nothing. The operator console shows it too.
func GroupLag(ctx context.Context, adm *kadm.Client, group string, topics ...string) ([]PartitionLag, error) {
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, err
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	var out []PartitionLag
	ends.Each(func(end kadm.ListedOffset) {
		start, ok := starts.Lookup(end.Topic, end.Partition)
		if end.Err != nil || !ok || start.Err != nil {
			return
		}
		from := start.Offset
		if c, ok := committed.Lookup(end.Topic, end.Partition); ok && c.Err == nil && c.At > from {
			from = c.At
		}
		out = append(out, PartitionLag{Topic: end.Topic, Partition: end.Partition, Lag: max(end.Offset-from, 0)})
	})
	slices.SortFunc(out, func(a, b PartitionLag) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return out, nil
}
