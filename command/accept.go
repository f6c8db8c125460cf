package command

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/fault"
)

// validator checks a body against one operation's schema and returns the
// normalised request its command event carries.
type validator func(body []byte) ([]byte, *Problem)

// accept is the path every POST takes: key, body, fingerprint, claim, then
// a 202 for a new command, a replay for a retry, or a 409 for a key reused
// with another request. Every rejection happens before the claim, so none
// consumes the key (I7).
func (a *API) accept(w http.ResponseWriter, r *http.Request, operation, target string, validate validator) {
	a.metrics.inFlight.Inc()
	defer a.metrics.inFlight.Dec()
	tenant := tenantOf(r)
	key, p := ParseIdempotencyKey(r.Header.Values("Idempotency-Key"))
	if p != nil {
		a.reject(w, p)
		return
	}
	body, canonical, p := readJSONBody(r)
	if p != nil {
		a.reject(w, p)
		return
	}
	// Validate the body as sent: canonicalisation reads numbers as IEEE
	// doubles, which would round 0.99999999999999999 to an integer.
	normalised, p := validate(body)
	if p != nil {
		a.reject(w, p)
		return
	}
	req := ClaimRequest{
		Tenant:      tenant,
		Operation:   operation,
		Key:         key,
		Target:      target,
		Fingerprint: Fingerprint(operation, target, canonical),
		Request:     normalised,
	}
	claims, err := a.claims.ClaimKeys(r.Context(), []ClaimRequest{req})
	if err != nil {
		writeError(w, r, a.logger, err)
		return
	}
	c := claims[0]
	switch {
	case c.Inserted:
		a.faults.Hit(fault.AfterClaimCommit)
		a.emitter.Emit(events.CommandAccepted{
			OperationID:    c.OperationID,
			Tenant:         tenant,
			Operation:      operation,
			IdempotencyKey: key,
			Target:         target,
			Request:        normalised,
			AcceptedAt:     c.AcceptedAt,
		})
		a.metrics.accepted.WithLabelValues(operation).Inc()
		a.answerPending(w, r, tenant, c.OperationID, false)
	case !bytes.Equal(c.Fingerprint, req.Fingerprint):
		a.metrics.conflicts.WithLabelValues(operation, "different_request").Inc()
		writeProblem(w, errKeyReused(a.mismatchStatus))
	case c.Response != nil:
		a.metrics.replayed.WithLabelValues(operation, "completed").Inc()
		w.Header().Set("Idempotent-Replayed", "true")
		writeStored(w, c.Response)
	default:
		a.metrics.replayed.WithLabelValues(operation, "pending").Inc()
		a.answerPending(w, r, tenant, c.OperationID, true)
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
			writeStored(w, resp)
			return
		}
	}
	writePending(w, operationID, replayed)
}

func (a *API) reject(w http.ResponseWriter, p *Problem) {
	a.metrics.rejected.WithLabelValues(strconv.Itoa(p.Status)).Inc()
	writeProblem(w, p)
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

// writeStored replays a recorded response byte for byte.
func writeStored(w http.ResponseWriter, s *StoredResponse) {
	h := w.Header()
	h.Set("Content-Type", s.ContentType)
	if s.Location != "" {
		h.Set("Location", s.Location)
	}
	w.WriteHeader(s.Status)
	_, _ = w.Write(s.Body)
}
