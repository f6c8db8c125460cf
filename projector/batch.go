package projector

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
)

// HandleBatch applies a run of one partition's records, in order, with as
// few transactions as it can: each stretch of commands applied in the
// database goes in one transaction (ApplyBatch: multi-row statements for
// the dedup records, the completions and the outbox, and for the effects
// of operations whose applier is an idemgate.BatchTxApplier; those of an
// idemgate.QueuedBatchTxApplier go out with the outbox rows, one round
// trip, pgx's pipeline), and each
// command applied by an upstream call on its own, where it stands.
//
// It returns nil once every record is applied. On an error the consumer
// handles the records one at a time, so that a poison record is found
// and dead-lettered alone; what this call did commit is then found done.
func (p *Projector) HandleBatch(ctx context.Context, recs []*kgo.Record) error {
	seen := make(map[string]bool, len(recs))
	var stretch []idemgate.Command
	var spans []trace.Span                   // one per command of the stretch, in its own trace
	applying := map[string]context.Context{} // each command's apply span, its result's parent
	flush := func() error {
		if len(stretch) == 0 {
			return nil
		}
		err := p.group.apply(ctx, stretch, func(id string) context.Context { return applying[id] })
		for _, s := range spans {
			if err != nil {
				s.SetStatus(codes.Error, err.Error())
			}
			s.End()
		}
		stretch, spans = stretch[:0], spans[:0]
		return err
	}
	for _, rec := range recs {
		cmd, err := decode(rec)
		if err != nil {
			return err
		}
		if seen[cmd.OperationID] {
			continue // delivered twice in one run: the first one applies it
		}
		seen[cmd.OperationID] = true
		op, ok := p.cfg.Registry.Operation(cmd.Operation)
		if !ok {
			return fmt.Errorf("%w: no operation %q is registered", idemgate.ErrPermanent, cmd.Operation)
		}
		if op.Call != nil {
			if err := flush(); err != nil {
				return err
			}
			cctx, span := p.startApply(ctx, rec, cmd)
			err := p.call(cctx, rec, cmd, op)
			span.End()
			if err != nil {
				return err
			}
			continue
		}
		actx, span := p.startApply(ctx, rec, cmd)
		applying[cmd.OperationID] = actx
		spans = append(spans, span)
		stretch = append(stretch, cmd)
	}
	return flush()
}

// effects applies commands in order, each run of one operation at once
// when its applier can: queued on b when its applier needs no answer from
// the database (ApplyBatch sends b with the outbox rows, in one round
// trip), on tx otherwise, once what was queued before it is sent.
func (p *Projector) effects(ctx context.Context, tx pgx.Tx, b *pgx.Batch, cmds []idemgate.Command) ([]idemgate.Response, error) {
	out := make([]idemgate.Response, 0, len(cmds))
	for i := 0; i < len(cmds); {
		j := i + 1
		for j < len(cmds) && cmds[j].Operation == cmds[i].Operation {
			j++
		}
		op, _ := p.cfg.Registry.Operation(cmds[i].Operation) // HandleBatch checked it
		if q, ok := op.Apply.(idemgate.QueuedBatchTxApplier); ok {
			resps, err := q.QueueTxBatch(ctx, b, cmds[i:j])
			if err != nil {
				return nil, err
			}
			out = append(out, resps...)
			i = j
			continue
		}
		if err := store.SendQueued(ctx, tx, b); err != nil {
			return nil, err
		}
		if ba, ok := op.Apply.(idemgate.BatchTxApplier); ok && j-i > 1 {
			resps, err := ba.ApplyTxBatch(ctx, tx, cmds[i:j])
			if err != nil {
				return nil, err
			}
			out = append(out, resps...)
		} else {
			for _, c := range cmds[i:j] {
				resp, err := op.Apply.ApplyTx(ctx, tx, c)
				if err != nil {
					return nil, err
				}
				out = append(out, resp)
			}
		}
		i = j
	}
	return out, nil
}
