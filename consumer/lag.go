package consumer

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// measureLag sets the lag gauge every LagInterval: for each partition of
// the group's topics, its log-end offset minus the group's committed
// offset (the whole log when nothing is committed yet). It is measured
// at the broker, so a backlog shows whether or not it is being fetched.
func (r *Runner) measureLag(ctx context.Context) {
	adm := kadm.NewClient(r.client)
	t := time.NewTicker(r.cfg.LagInterval)
	defer t.Stop()
	for {
		r.sampleLag(ctx, adm)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Runner) sampleLag(ctx context.Context, adm *kadm.Client) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LagInterval)
	defer cancel()
	lags, err := adm.Lag(ctx, r.cfg.Group)
	if err != nil {
		return
	}
	wanted := map[string]bool{}
	for _, t := range r.cfg.Topics {
		wanted[t] = true
	}
	lags.Each(func(l kadm.DescribedGroupLag) {
		for topic, ps := range l.Lag {
			if !wanted[topic] {
				continue
			}
			for p, ml := range ps {
				if ml.Err != nil || ml.Lag < 0 {
					continue
				}
				r.lag.WithLabelValues(r.cfg.Group, topic, strconv.Itoa(int(p))).Set(float64(ml.Lag))
			}
		}
	})
}
