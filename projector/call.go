package projector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/fault"
)

// callTimeout bounds one call attempt as the projector sees it: the
// applier's own timeout (a route's, at most 30 s) must end it first.
const callTimeout = 40 * time.Second

// call carries out a command whose effect lives in another system. Each
// attempt is: commit the recovery point (attempt n starts now), call with
// no transaction open, then record the answer in a transaction of its
// own. A crash anywhere in between leaves the command unrecorded, so its
// event is delivered again and the call repeated with the same operation
// id, which an upstream honouring Idempotency-Key deduplicates.
//
// Retryable failures are retried with a capped, jittered backoff that
// honours the upstream's Retry-After, up to MaxCallAttempts attempts in
// all (crashes included); then the command is dead-lettered with a
// stored 502. The waits end at once when ctx ends (revocation, shutdown):
// the partition's next owner resumes from the recovery point.
func (p *Projector) call(ctx context.Context, rec *kgo.Record, cmd idemgate.Command, op idemgate.Operation) error {
	gauge := p.waiting.WithLabelValues(cmd.Operation)
	gauge.Inc()
	defer gauge.Dec()
	for {
		n, done, err := p.beginAttempt(ctx, cmd)
		if err != nil || done {
			return err
		}
		if n == 0 {
			return p.giveUp(ctx, rec, cmd, p.cfg.MaxCallAttempts)
		}
		resp, err := p.attemptCall(ctx, cmd, op, n)
		p.cfg.Faults.Hit(fault.AfterUpstreamCall)
		var retry *idemgate.RetryableError
		switch {
		case err == nil:
			return p.record(ctx, cmd, resp)
		case !errors.As(err, &retry):
			return err // permanent (the consumer dead-letters it) or the database's
		}
		p.noteError(ctx, cmd, err)
		if n >= p.cfg.MaxCallAttempts {
			return p.giveUp(ctx, rec, cmd, n)
		}
		wait := p.backoff(n, retry.After)
		p.cfg.Logger.Warn("upstream call failed; retrying", "operation", cmd.Operation, "operation_id", cmd.OperationID,
			"attempt", n, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("upstream retry interrupted: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
}

func (p *Projector) beginAttempt(ctx context.Context, cmd idemgate.Command) (int, bool, error) {
	actx, cancel := attemptContext(ctx, attemptTimeout)
	defer cancel()
	return p.cfg.Store.BeginAttempt(actx, p.cfg.Name, cmd, p.cfg.MaxCallAttempts)
}

// attemptCall runs one call. Shutdown does not cut it short: its answer is
// recorded rather than thrown away and asked for again.
func (p *Projector) attemptCall(ctx context.Context, cmd idemgate.Command, op idemgate.Operation, n int) (idemgate.Response, error) {
	actx, cancel := attemptContext(ctx, callTimeout)
	defer cancel()
	actx, span := p.tracer.Start(actx, "idemgate.upstream.call "+cmd.Operation, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("idemgate.operation", cmd.Operation), attribute.String("idemgate.operation_id", cmd.OperationID),
			attribute.Int("idemgate.attempt", n)))
	defer span.End()
	resp, err := op.Call.Call(actx, cmd, n)
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, "call failed")
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", resp.Status))
	}
	return resp, err
}

func (p *Projector) record(ctx context.Context, cmd idemgate.Command, resp idemgate.Response) error {
	actx, cancel := attemptContext(ctx, attemptTimeout)
	defer cancel()
	fresh, err := p.cfg.Store.RecordOnce(actx, p.cfg.Name, cmd, resp)
	if err == nil && fresh {
		p.observe(cmd, resp)
	}
	return err
}

func (p *Projector) noteError(ctx context.Context, cmd idemgate.Command, cause error) {
	actx, cancel := attemptContext(ctx, attemptTimeout)
	defer cancel()
	if err := p.cfg.Store.NoteAttemptError(actx, cmd.OperationID, cause.Error()); err != nil {
		p.cfg.Logger.Warn("note the attempt's error", "operation_id", cmd.OperationID, "err", err)
	}
}

// giveUp dead-letters a command whose upstream kept failing and records a
// 502 for its client; `idemgate redrive` gives it a new budget.
func (p *Projector) giveUp(ctx context.Context, rec *kgo.Record, cmd idemgate.Command, attempts int) error {
	cause := fmt.Errorf("upstream of %s still failing after %d attempts", cmd.Operation, attempts)
	return p.deadLetter(ctx, rec, cause, idemgate.NewProblem(http.StatusBadGateway, "upstream-failed", "Upstream failed",
		fmt.Sprintf("the upstream service did not answer the command after %d attempts; an operator can drive it again", attempts)))
}

// backoff is the wait after attempt n: doubling from CallBackoff, capped
// at MaxCallBackoff, with jitter, and never less than the upstream's
// Retry-After (itself capped at a minute).
func (p *Projector) backoff(n int, retryAfter time.Duration) time.Duration {
	d := p.cfg.CallBackoff << min(n-1, 16)
	d = min(d, p.cfg.MaxCallBackoff)
	d = d/2 + rand.N(d/2+1)
	return max(d, min(retryAfter, time.Minute))
}
