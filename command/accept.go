package command

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/fault"
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
			TraceParent: traceParent(r),
		}
		ctx, cancel := a.dbContext(r)
		claims, err := a.cfg.Store.ClaimKeys(ctx, []idemgate.ClaimRequest{req})
		cancel()
		if err != nil {
			writeError(w, r, a.failures, err)
			return
		}
		c := claims[0]
		switch {
		case c.Inserted:
			a.cfg.Faults.Hit(fault.AfterClaimCommit)
			a.cfg.Emitter.Emit(idemgate.Command{
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
		case !bytes.Equal(c.Fingerprint, req.Fingerprint):
			a.metrics.conflicts.WithLabelValues(op.Name, "different_request").Inc()
			writeProblem(w, errKeyReused(a.cfg.MismatchStatus))
		case c.Response != nil:
			a.metrics.replayed.WithLabelValues(op.Name, "completed").Inc()
			w.Header().Set("Idempotent-Replayed", "true")
			writeResponse(w, c.Response)
		default:
			a.metrics.replayed.WithLabelValues(op.Name, "pending").Inc()
			a.answerPending(w, r, tenant, c.OperationID, true)
		}
	}
}

// answerPending answers a command not yet completed: 202, unless the
// client asked to wait (Prefer: wait=N) and the outcome arrives in time.
func (a *API) answerPending(w http.ResponseWriter, r *http.Request, tenant, operationID string, replayed bool) {
	if wait := preferWait(r.Header.Values("Prefer")); wait > 0 {
		if resp := a.awaitOutcome(r.Context(), tenant, operationID, time.Duration(wait)*time.Second); resp != nil {
			w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(wait))
			if replayed {
				w.Header().Set("Idempotent-Replayed", "true")
			}
			writeResponse(w, resp)
			return
		}
	}
	writePending(w, operationID, replayed)
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

// writePending answers 202 for a command not yet completed. The body and
// Location derive from the operation id alone, so every retry gets the
// same bytes.
func writePending(w http.ResponseWriter, operationID string, replayed bool) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Location", "/v1/operations/"+operationID)
	h.Set("Retry-After", "1")
	if replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"operation_id":"` + operationID + `","status":"pending"}`))
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

// traceParent is the client's W3C traceparent header when it is well
// formed (version-traceid-spanid-flags, 55 characters for version 00);
// anything else is dropped rather than passed on.
func traceParent(r *http.Request) string {
	v := r.Header.Values("Traceparent")
	if len(v) != 1 || len(v[0]) < 55 || len(v[0]) > 128 {
		return ""
	}
	for _, c := range v[0] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return ""
		}
	}
	return v[0]
}
