package command

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
)

// KeyView is the body of GET /v1/idempotency-keys/{operation}/{key}: what
// support sees of a client's key. cmd/idemgate's inspect prints it too.
type KeyView struct {
	Operation   string        `json:"operation"`
	Key         string        `json:"key"`
	OperationID string        `json:"operation_id"`
	State       string        `json:"state"` // accepted, published, outcome_unknown, completed
	Fingerprint string        `json:"fingerprint"`
	AcceptedAt  string        `json:"accepted_at"`
	ExpiresAt   string        `json:"expires_at"`
	CompletedAt string        `json:"completed_at,omitempty"`
	Reemitted   int           `json:"reemitted"`
	Failed      bool          `json:"failed"`
	Upstream    *upstreamView `json:"upstream,omitempty"`
	Response    *responseView `json:"response,omitempty"`
}

// NewKeyView presents a claim.
func NewKeyView(v store.KeyView) KeyView {
	out := KeyView{Operation: v.Operation, Key: v.Key, OperationID: v.OperationID, State: strings.ToLower(v.State),
		Fingerprint: "sha256:" + hex.EncodeToString(v.Fingerprint), AcceptedAt: idemgate.FormatTime(v.AcceptedAt),
		ExpiresAt: idemgate.FormatTime(v.ExpiresAt), Reemitted: v.EmitAttempts, Failed: v.DeadLettered}
	if v.CompletedAt != nil {
		out.CompletedAt = idemgate.FormatTime(*v.CompletedAt)
	}
	out.Upstream = newUpstreamView(v.Calls)
	if v.Response != nil {
		out.Response = newResponseView(v.Response)
	}
	return out
}

func newResponseView(r *idemgate.Response) *responseView {
	rv := &responseView{Status: r.Status, Body: r.Body}
	if !json.Valid(r.Body) {
		// An upstream may answer text: shown as a JSON string.
		rv.Body, _ = json.Marshal(string(r.Body))
	}
	return rv
}

// getKey serves GET /v1/idempotency-keys/{operation}/{key}, within the
// caller's tenant: another tenant's key is not found, like one never
// claimed or forgotten after its retention.
func (a *API) getKey(w http.ResponseWriter, r *http.Request) {
	op, key := chi.URLParam(r, "operation"), chi.URLParam(r, "key")
	if r.URL.RawPath != "" {
		// chi routed on the escaped path: a key may hold an escaped '/'.
		op, _ = url.PathUnescape(op)
		key, _ = url.PathUnescape(key)
	}
	if _, known := a.cfg.Registry.Operation(op); !known {
		writeProblem(w, idemgate.NotFound("operation "+op))
		return
	}
	ctx, cancel := a.dbContext(r)
	defer cancel()
	v, found, err := a.cfg.Store.Key(ctx, tenantOf(r), op, key)
	if err != nil {
		writeError(w, r, a.failures, err)
		return
	}
	if !found {
		writeProblem(w, idemgate.NotFound("idempotency key "+key+" of "+op))
		return
	}
	infoOf(r.Context()).operationID = v.OperationID
	writeJSON(w, http.StatusOK, NewKeyView(v))
}
