package consumer

import (
	"context"
	"errors"
	"strconv"

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
	committed, err := adm.FetchOffsets(ctx, r.cfg.Group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return
	}
	starts, err := adm.ListStartOffsets(ctx, r.cfg.Topics...)
	if err != nil {
		return
	}
	ends, err := adm.ListEndOffsets(ctx, r.cfg.Topics...)
	if err != nil {
		return
	}
	ends.Each(func(end kadm.ListedOffset) {
		start, ok := starts.Lookup(end.Topic, end.Partition)
		if end.Err != nil || !ok || start.Err != nil {
			return
		}
		from := start.Offset
		if c, ok := committed.Lookup(end.Topic, end.Partition); ok && c.Err == nil && c.At > from {
			from = c.At
		}
		r.lag.WithLabelValues(r.cfg.Group, end.Topic, strconv.Itoa(int(end.Partition))).Set(float64(max(end.Offset-from, 0)))
	})
}
