package projector

import (
	"context"
	"fmt"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
)

// DeadLetter gives up on a record after its bounded retries: it copies the
// record to the dead-letter topic with the reason, and, when the record is
// a command, completes it with a stored 500 problem so that its client
// gets an answer. `idemgate redrive` drives it again.
func (p *Projector) DeadLetter(ctx context.Context, rec *kgo.Record, cause error) error {
	return p.deadLetter(ctx, rec, cause, idemgate.NewProblem(http.StatusInternalServerError, idemgate.ProblemProcessingFailed, "Processing failed",
		"the command could not be applied; an operator can drive it again"))
}

// deadLetter dead-letters rec and records failure as its command's
// response.
func (p *Projector) deadLetter(ctx context.Context, rec *kgo.Record, cause error, failure *idemgate.Problem) error {
	ctx, cancel := attemptContext(ctx, attemptTimeout)
	defer cancel()
	dl := &kgo.Record{Topic: p.cfg.DeadLetterTopic, Key: rec.Key, Value: rec.Value,
		Headers: append(append([]kgo.RecordHeader{}, rec.Headers...),
			kgo.RecordHeader{Key: "idemgate_error", Value: []byte(cause.Error())},
			kgo.RecordHeader{Key: "idemgate_origin", Value: []byte(fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset))})}
	if err := p.cfg.Producer.EmitSync(ctx, dl); err != nil {
		return err
	}
	p.dead.Inc()
	cmd, err := decode(rec)
	if err != nil {
		p.cfg.Logger.Error("dead-lettered an undecodable record", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", cause)
		return nil
	}
	p.cfg.Logger.Error("dead-lettered a command", "operation_id", cmd.OperationID, "status", failure.Status, "type", failure.Type, "err", cause)
	failure.Detail += " (operation " + cmd.OperationID + ")"
	resp := idemgate.ProblemResponse(failure)
	a, fresh, err := p.cfg.Store.ApplyOnce(ctx, p.cfg.Name, cmd, store.Record(resp), nil)
	if err == nil && fresh {
		p.observe(cmd, resp)
		p.results.publish(within(ctx), a)
	}
	return err
}
