package command

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
)

// read returns the handler of a module's read route.
func (a *API) read(rd idemgate.Read) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := idemgate.ReadRequest{Tenant: tenantOf(r), Params: pathParams(r, rd.Path)}
		var resp idemgate.Response
		ctx, cancel := a.dbContext(r)
		defer cancel()
		err := a.cfg.Store.Read(ctx, func(tx pgx.Tx) error {
			var err error
			resp, err = rd.Handle(ctx, tx, req)
			return err
		})
		if err != nil {
			writeError(w, r, a.failures, err)
			return
		}
		writeResponse(w, &resp)
	}
}

// commandView is the body of GET /v1/operations/{id}: a command, by its
// operation id.
type commandView struct {
	OperationID string        `json:"operation_id"`
	Status      string        `json:"status"`
	Response    *responseView `json:"response,omitempty"`
	Upstream    *upstreamView `json:"upstream,omitempty"`
}

// upstreamView is the recovery point of a command applied by a call.
type upstreamView struct {
	Attempts            int    `json:"attempts"`
	Failures            int    `json:"failures"`
	Unfinished          int    `json:"unfinished"`
	FirstAttemptAt      string `json:"first_attempt_at"`
	LastAttemptAt       string `json:"last_attempt_at"`
	LastError           string `json:"last_error,omitempty"`
	OutcomeUnknownSince string `json:"outcome_unknown_since,omitempty"`
}

func newUpstreamView(c *store.CallAttempts) *upstreamView {
	if c == nil {
		return nil
	}
	v := &upstreamView{Attempts: c.Attempts, Failures: c.Failures, Unfinished: c.Unfinished,
		FirstAttemptAt: idemgate.FormatTime(c.FirstAttemptAt), LastAttemptAt: idemgate.FormatTime(c.LastAttemptAt), LastError: c.LastError}
	if c.OutcomeUnknownAt != nil {
		v.OutcomeUnknownSince = idemgate.FormatTime(*c.OutcomeUnknownAt)
	}
	return v
}

// responseView is a recorded response as the views show it.
type responseView struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

func newResponseView(r *idemgate.Response) *responseView {
	if r == nil {
		return nil
	}
	rv := &responseView{Status: r.Status, Body: r.Body}
	if !json.Valid(r.Body) {
		// An upstream may answer text: shown as a JSON string.
		rv.Body, _ = json.Marshal(string(r.Body))
	}
	return rv
}

// getCommand serves GET /v1/operations/{id}, within the caller's tenant.
func (a *API) getCommand(w http.ResponseWriter, r *http.Request) {
	raw := chi.URLParam(r, "operationID")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		writeProblem(w, idemgate.NotFound("operation "+raw))
		return
	}
	ctx, cancel := a.dbContext(r)
	defer cancel()
	v, found, err := a.cfg.Store.Command(ctx, tenantOf(r), id.String())
	if err != nil {
		writeError(w, r, a.failures, err)
		return
	}
	if !found {
		writeProblem(w, idemgate.NotFound("operation "+id.String()))
		return
	}
	writeJSON(w, http.StatusOK, commandView{OperationID: v.OperationID, Status: v.State.Status(),
		Response: newResponseView(v.Response), Upstream: newUpstreamView(v.Calls)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, errInternal())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
