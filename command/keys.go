package command

import (
	"encoding/hex"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
)

// KeyView is the body of GET /v1/idempotency-keys/{operation}/{key}: what
// support sees of a client's key. cmd/idemgate's inspect prints it too.
type KeyView struct {
	Operation    string              `json:"operation"`
	Key          string              `json:"key"`
	OperationID  string              `json:"operation_id"`
	State        idemgate.ClaimState `json:"state"`
	Fingerprint  string              `json:"fingerprint"`
	AcceptedAt   string              `json:"accepted_at"`
	ExpiresAt    string              `json:"expires_at"`
	CompletedAt  string              `json:"completed_at,omitempty"`
	Reemissions  int                 `json:"reemitted"` // wire name kept: the API promises it
	DeadLettered bool                `json:"failed"`    // wire name kept: the API promises it
	Upstream     *upstreamView       `json:"upstream,omitempty"`
	Response     *responseView       `json:"response,omitempty"`
}

// NewKeyView presents a claim.
func NewKeyView(v store.KeyView) KeyView {
	out := KeyView{Operation: v.Operation, Key: v.Key, OperationID: v.OperationID, State: v.State,
		Fingerprint: "sha256:" + hex.EncodeToString(v.Fingerprint), AcceptedAt: idemgate.FormatTime(v.AcceptedAt),
		ExpiresAt: idemgate.FormatTime(v.ExpiresAt), Reemissions: v.Reemissions, DeadLettered: v.DeadLettered}
	if v.CompletedAt != nil {
		out.CompletedAt = idemgate.FormatTime(*v.CompletedAt)
	}
	out.Upstream = newUpstreamView(v.Calls)
	out.Response = newResponseView(v.Response)
	return out
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
