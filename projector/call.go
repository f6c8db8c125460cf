package projector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/internal/retry"
	"github.com/idemgate/idemgate/store"
)

// The call budget's defaults (see Config.CallBudget).
const (
	// DefaultCallFailures is the least number of observed failures before
	// a call is given up.
	DefaultCallFailures = 5
	// DefaultCallBackoff is the ceiling of the wait after a call's first
	// observed failure: an upstream's blip (a restart, a full queue) is
	// often over within a second, and one retry a second per command is
	// no load an upstream notices.
	DefaultCallBackoff = time.Second
	// DefaultMaxCallBackoff caps the doubling wait between a call's
	// attempts: an upstream that comes back is used again within half a
	// minute, and a ten-minute outage costs about 25 attempts.
	DefaultMaxCallBackoff = 30 * time.Second
	// DefaultCallRetryFor is the least time a call keeps being retried
	// after its first observed failure: Kubernetes gives a rolling
	// deployment 10 minutes (progressDeadlineSeconds: 600) before it calls
	// it failed, so an upstream that is being deployed, or restarted by
	// its orchestrator, comes back within it. With the backoff capped at
	// 30 s, that is about 25 attempts.
	DefaultCallRetryFor = 10 * time.Minute
	// DefaultMaxUnfinished is how many attempts in a row may end without
	// an outcome (their process died) before the command is quarantined
	// as outcome unknown. A crash kills every call in flight in the
	// process, not only the one that caused it: with the projector dying
	// after one call in four (TestGatewayCrashesAreNotFailures), about
	// half the attempts end unfinished. So after isolateAfter (3) in a row,
	// a command's attempts run alone in their process, where a death is
	// its own: to reach 12 in a row, a command that did nothing wrong must
	// then lose 9 attempts alone, at that crash rate one command in
	// 250,000 (0.25^9) of those that got that far, about one in 2.6
	// million in all. A command that kills its process on every attempt
	// costs 12 restarts before it is set aside; it is resumed at once
	// each time (a wait before resuming, tried first, starved a command
	// whose process kept dying of other commands' crashes before the wait
	// was over).
	DefaultMaxUnfinished = 12
)

// callTimeout bounds one call attempt as the projector sees it: the
// applier's own timeout (a route's, at most 30 s) must end it first.
const callTimeout = 40 * time.Second

// call carries out a command whose effect lives in another system. Each
// attempt is: commit the recovery point (attempt n starts now), call with
// no transaction open, then record the answer in a transaction of its
// own. A crash anywhere in between leaves the attempt unfinished: its
// event is delivered again and the call resumed with the same operation
// id, which an upstream honouring Idempotency-Key deduplicates. An
// unfinished attempt is not a failure: nothing was observed.
//
// Observed failures (a RetryableError) are retried with a capped,
// jittered backoff that honours the upstream's Retry-After, until the
// call budget is spent; then the command gets a stored 502 if every
// attempt failed in an observed way, and is quarantined as outcome
// unknown if one never ended (the upstream may have applied it). A
// command whose attempts end unfinished MaxUnfinished times in a row (it
// kills its process) is quarantined too, and the partition goes on. The
// waits end at once when ctx ends (revocation, shutdown): the
// partition's next owner resumes from the recovery point.
func (p *Projector) call(ctx context.Context, rec *kgo.Record, cmd idemgate.Command, op idemgate.Operation) error {
	gauge := p.waiting.WithLabelValues(cmd.Operation)
	gauge.Inc()
	defer gauge.Dec()
	for {
		alone, err := p.mustRunAlone(ctx, cmd)
		if err != nil {
			return err
		}
		unlock := p.lockCalls(alone)
		o, err := p.attempt(ctx, cmd, op)
		unlock()
		if err != nil {
			return err
		}
		switch o.next.Verdict {
		case store.CallDone:
			return nil
		case store.CallFailed:
			return p.giveUp(ctx, rec, cmd, o.next)
		case store.CallOutcomeUnknown:
			p.quarantined(cmd, o.next)
			return nil
		case store.CallNow:
			continue // the attempt ended without an outcome: resume it
		}
		wait := p.backoff(o.next.Failures, o.retry.After)
		p.cfg.Logger.Warn("upstream call failed; retrying", "operation", cmd.Operation, "operation_id", cmd.OperationID,
			"attempt", o.next.N, "failures", o.next.Failures, "retry_in", wait, "err", o.retry)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// outcome is what one attempt came to: next.Verdict is CallDone once the
// answer is recorded, CallRetry after an observed failure (retry holds
// it), CallFailed or CallOutcomeUnknown when the budget says so, and
// CallNow when the attempt ended without an outcome.
type outcome struct {
	next  store.Attempt
	retry *idemgate.RetryableError
}

// attempt runs one attempt: it commits the recovery point, calls, and
// records the answer or notes the failure. The caller holds the calls'
// lock throughout, so an attempt run alone has no other call beside it
// from its recovery point to its record.
func (p *Projector) attempt(ctx context.Context, cmd idemgate.Command, op idemgate.Operation) (outcome, error) {
	a, err := p.beginAttempt(ctx, cmd)
	if err != nil || a.Verdict != store.CallNow {
		return outcome{next: a}, err
	}
	if a.Streak >= isolateAfter {
		p.cfg.Logger.Warn("resuming an upstream call alone in its process: its last attempts ended unfinished", "operation", cmd.Operation,
			"operation_id", cmd.OperationID, "attempt", a.N, "unfinished_in_a_row", a.Streak)
	}
	resp, err := p.attemptCall(ctx, cmd, op, a.N)
	p.cfg.Faults.Hit(fault.AfterUpstreamCall)
	var retry *idemgate.RetryableError
	switch {
	case err == nil:
		return outcome{next: store.Attempt{Verdict: store.CallDone}}, p.record(ctx, cmd, resp)
	case errors.Is(err, idemgate.ErrPermanent):
		// Nothing was sent: the command itself cannot be called (the
		// consumer dead-letters it after its attempts).
		p.endAttempt(ctx, cmd, err)
		return outcome{}, err
	case !errors.As(err, &retry):
		// Neither a failure the upstream showed nor a refusal before
		// sending: the outcome is unknown, like a crash's. The next
		// attempt resumes this one.
		p.cfg.Logger.Warn("upstream call ended without an outcome; resuming", "operation", cmd.Operation,
			"operation_id", cmd.OperationID, "attempt", a.N, "err", err)
		return outcome{next: a}, nil
	}
	next, err := p.noteFailure(ctx, cmd, err)
	if err != nil {
		return outcome{}, err // the attempt stays in flight: the next one resumes it
	}
	return outcome{next: next, retry: retry}, nil
}

// isolateAfter is how many attempts at a call in a row may end unfinished
// before the next one runs alone in its process. A crash kills every call
// in flight, so an unfinished attempt may be another command's doing; one
// that runs alone and dies again is its own. A command that did nothing
// wrong thus rarely loses its attempts to others' crashes all the way to
// the quarantine.
const isolateAfter = 3

// mustRunAlone says whether cmd's next attempt must run alone: its last
// isolateAfter attempts or more ended unfinished, counting one still in
// flight (its process died during it).
func (p *Projector) mustRunAlone(ctx context.Context, cmd idemgate.Command) (bool, error) {
	actx, cancel := attemptContext(ctx, attemptTimeout)
	defer cancel()
	streak, err := p.cfg.Store.UnfinishedStreak(actx, cmd.OperationID)
	return streak >= isolateAfter, err
}

// lockCalls takes the calls' lock: shared beside the other calls, or
// alone, once the calls in flight have ended and before any other starts.
// It returns the unlock.
func (p *Projector) lockCalls(alone bool) func() {
	if alone {
		p.isolation.Lock()
		return p.isolation.Unlock
	}
	p.isolation.RLock()
	return p.isolation.RUnlock
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("upstream retry interrupted: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

func (p *Projector) beginAttempt(ctx context.Context, cmd idemgate.Command) (store.Attempt, error) {
	actx, cancel := attemptContext(ctx, attemptTimeout)
	defer cancel()
	return p.cfg.Store.BeginAttempt(actx, p.cfg.Name, cmd, p.cfg.CallBudget)
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
	a, fresh, err := p.cfg.Store.ApplyOnce(actx, p.cfg.Name, cmd, store.Record(resp), nil)
	if err == nil && fresh {
		p.observe(cmd, resp)
		p.results.publish(within(ctx), a)
	}
	return err
}

func (p *Projector) noteFailure(ctx context.Context, cmd idemgate.Command, cause error) (store.Attempt, error) {
	actx, cancel := attemptContext(ctx, attemptTimeout)
	defer cancel()
	return p.cfg.Store.NoteFailure(actx, cmd.OperationID, cause.Error(), p.cfg.CallBudget)
}

func (p *Projector) endAttempt(ctx context.Context, cmd idemgate.Command, cause error) {
	actx, cancel := attemptContext(ctx, attemptTimeout)
	defer cancel()
	if err := p.cfg.Store.EndAttempt(actx, cmd.OperationID, cause.Error()); err != nil {
		p.cfg.Logger.Warn("end the attempt", "operation_id", cmd.OperationID, "err", err)
	}
}

// quarantined reports a command set aside as outcome unknown: nothing is
// stored for its client, the partition goes on, and the operator resolves
// it with `idemgate redrive`.
func (p *Projector) quarantined(cmd idemgate.Command, a store.Attempt) {
	p.unknown.WithLabelValues(cmd.Operation).Inc()
	p.cfg.Logger.Error("upstream call quarantined: outcome unknown; nothing is stored for the client until `idemgate redrive`",
		"operation", cmd.Operation, "operation_id", cmd.OperationID, "attempts", a.N, "failures", a.Failures,
		"unfinished", a.Unfinished, "unfinished_in_a_row", a.Streak, "last_error", a.LastError)
}

// giveUp dead-letters a command whose upstream failed, in an observed
// way, on every attempt, and records a 502 for its client; `idemgate
// redrive` gives it a new budget.
func (p *Projector) giveUp(ctx context.Context, rec *kgo.Record, cmd idemgate.Command, a store.Attempt) error {
	cause := fmt.Errorf("upstream of %s failed on all %d attempts over %s; the last: %s", cmd.Operation, a.Failures,
		a.FailingFor.Round(time.Second), a.LastError)
	return p.deadLetter(ctx, rec, cause, idemgate.NewProblem(http.StatusBadGateway, idemgate.ProblemUpstreamFailed, "Upstream failed",
		fmt.Sprintf("the upstream service failed on all %d attempts over %s (the last: %s); an operator can drive the command again",
			a.Failures, a.FailingFor.Round(time.Second), a.LastError)))
}

// backoff is the wait after n failures: its ceiling doubles from
// CallBackoff up to MaxCallBackoff, the wait is drawn from the ceiling's
// upper half (jitter 0.5), and it is never less than the upstream's
// Retry-After (itself capped at a minute).
func (p *Projector) backoff(n int, retryAfter time.Duration) time.Duration {
	d := retry.Policy{Base: p.cfg.CallBackoff, Max: p.cfg.MaxCallBackoff, Jitter: 0.5}.Delay(n)
	return max(d, min(retryAfter, time.Minute))
}
