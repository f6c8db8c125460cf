package command

import (
	"bytes"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/internal/retry"
	"github.com/idemgate/idemgate/tracing"
)

// accept returns the handler of op's POST route: target, key, body,
// fingerprint, claim, then a 202 for a new command, a replay for a retry,
// or a 409 for a key reused with another request. Every rejection happens
// before the claim, so none consumes the key (I7).
func (a *API) accept(op idemgate.Operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.metrics.inFlight.Inc()
		defer a.metrics.inFlight.Dec()
		tenant := tenantOf(r)
		target, err := op.TargetOf(pathParams(r, op.Path))
		if err != nil {
			a.rejectUnread(w, err)
			return
		}
		key, p := ParseIdempotencyKey(r.Header.Values("Idempotency-Key"))
		if p != nil {
			a.rejectUnread(w, p)
			return
		}
		if p := checkContentHeaders(r); p != nil {
			a.rejectUnread(w, p)
			return
		}
		body, canonical, p := readJSONBody(r)
		if p != nil {
			a.reject(w, r, p)
			return
		}
		// Validate the body as sent: canonicalisation reads numbers as IEEE
		// doubles, which would round 0.99999999999999999 to an integer.
		request, err := op.Validate(body)
		if err != nil {
			a.reject(w, r, err)
			return
		}
		req := idemgate.ClaimRequest{
			Tenant:      tenant,
			Operation:   op.Name,
			Key:         key,
			Target:      target,
			Fingerprint: Fingerprint(op.Name, target, canonical),
			Request:     request,
			Retention:   a.cfg.Retention(op),
			TraceParent: tracing.TraceParent(r.Context()),
		}
		ctx, cancel := a.dbContext(r)
		ctx, span := a.tracer.Start(ctx, "idemgate.claim", trace.WithAttributes(
			attribute.String("idemgate.operation", op.Name), attribute.String("db.system.name", "postgresql")))
		c, err := a.claims.claim(ctx, req)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "claim failed")
		}
		span.SetAttributes(attribute.Bool("idemgate.claim.inserted", c.Inserted))
		span.End()
		cancel()
		if err != nil {
			writeError(w, r, a.failures, err)
			return
		}
		infoOf(r.Context()).operationID = c.OperationID
		if c.Inserted {
			a.cfg.Faults.Hit(fault.AfterClaimCommit)
			a.cfg.Emitter.Emit(r.Context(), idemgate.Command{
				OperationID:    c.OperationID,
				Tenant:         tenant,
				Operation:      op.Name,
				IdempotencyKey: key,
				Target:         target,
				Request:        request,
				AcceptedAt:     c.AcceptedAt,
				TraceParent:    req.TraceParent,
			})
			a.metrics.accepted.WithLabelValues(op.Name).Inc()
			a.answerPending(w, r, tenant, c.OperationID, false)
			return
		}
		if !bytes.Equal(c.Fingerprint, req.Fingerprint) {
			a.metrics.conflicts.WithLabelValues(op.Name, "different_request").Inc()
			writeProblem(w, errKeyReused(a.cfg.MismatchStatus))
			return
		}
		state := c.State()
		a.metrics.replayed.WithLabelValues(op.Name, state.Status()).Inc()
		switch state {
		case idemgate.ClaimCompleted:
			w.Header().Set("Idempotent-Replayed", "true")
			resp := c.Response
			if a.cfg.Faults != nil {
				resp = a.mutateReplay(c.OperationID, resp)
			}
			writeResponse(w, resp)
		case idemgate.ClaimOutcomeUnknown:
			writePending(w, c.OperationID, state, true)
		default:
			a.answerPending(w, r, tenant, c.OperationID, true)
		}
	}
}

// answerPending answers a command not yet completed: 202, unless the
// client asked to wait (Prefer: wait=N) and the outcome arrives in time.
func (a *API) answerPending(w http.ResponseWriter, r *http.Request, tenant, operationID string, replayed bool) {
	if wait := preferWait(r.Header.Values("Prefer")); wait > 0 {
		if resp := a.awaitResponse(r.Context(), tenant, operationID, time.Duration(wait)*time.Second); resp != nil {
			w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(wait))
			if replayed {
				w.Header().Set("Idempotent-Replayed", "true")
			}
			writeResponse(w, resp)
			return
		}
	}
	writePending(w, operationID, idemgate.ClaimPending, replayed)
}

// reject answers a request refused before its claim. A validation error
// that is not a *Problem is answered as a 422 with its message.
func (a *API) reject(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, a.rejection(err))
}

// rejectUnread is reject for a request whose body was not read yet.
func (a *API) rejectUnread(w http.ResponseWriter, err error) {
	rejectUnread(w, a.rejection(err))
}

func (a *API) rejection(err error) *Problem {
	var p *Problem
	if !errors.As(err, &p) {
		p = idemgate.Invalid(err.Error())
	}
	a.metrics.rejected.WithLabelValues(strconv.Itoa(p.Status)).Inc()
	return p
}

// writePending answers 202 for a command not yet completed: pending, or
// outcome_unknown once its upstream call is quarantined (nothing is
// stored until an operator redrives it). The body and Location derive
// from the operation id and its state alone, so every retry in the same
// state gets the same bytes.
func writePending(w http.ResponseWriter, operationID string, state idemgate.ClaimState, replayed bool) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Location", "/v1/operations/"+operationID)
	retry.SetAfter(h, retryIn)
	if replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"operation_id":"` + operationID + `","status":"` + state.Status() + `"}`))
}

// writeResponse answers a recorded response byte for byte.
func writeResponse(w http.ResponseWriter, s *idemgate.Response) {
	h := w.Header()
	if s.ContentType != "" {
		h.Set("Content-Type", s.ContentType)
	} else {
		h["Content-Type"] = nil // an upstream that sent none: no sniffed type either
	}
	if s.Location != "" {
		h.Set("Location", s.Location)
	}
	w.WriteHeader(s.Status)
	_, _ = w.Write(s.Body)
}

// mutateReplay is the mutation point fault.ReplayOtherAnswer, for the
// tests that prove the history check catches a wrong replay: when it
// fires, the replay serves the stored answer this process replayed last,
// if that was another operation's.
func (a *API) mutateReplay(operationID string, resp *idemgate.Response) *idemgate.Response {
	a.lastReplay.mu.Lock()
	defer a.lastReplay.mu.Unlock()
	prevOp, prev := a.lastReplay.operationID, a.lastReplay.resp
	a.lastReplay.operationID, a.lastReplay.resp = operationID, resp
	if prev != nil && prevOp != operationID && a.cfg.Faults.Fires(fault.ReplayOtherAnswer) {
		return prev
	}
	return resp
}
