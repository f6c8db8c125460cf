package events

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/idemgate/idemgate"
)

// Event types and the source of idemgate's events.
const (
	TypeCommandAccepted  = "dev.idemgate.command.accepted.v1"
	TypeCommandCompleted = "dev.idemgate.command.completed.v1"
	Source               = "/idemgate"
	ContentTypeJSON      = "application/json"
)

// IdentityKey is the record key of a command: tenant/operation/key. Tenant
// and operation never contain '/', so the identity splits back unambiguously
// even when the idempotency key does.
func IdentityKey(tenant, operation, key string) []byte {
	return []byte(tenant + "/" + operation + "/" + key)
}

// CommandAccepted wraps a command for the commands topic; the event id is
// the operation id, the same on every re-emission.
func CommandAccepted(c idemgate.Command) (Envelope, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: encode command: %w", err)
	}
	return Envelope{
		ID:          c.OperationID,
		Type:        TypeCommandAccepted,
		Source:      Source,
		Subject:     c.Operation,
		Time:        c.AcceptedAt,
		ContentType: ContentTypeJSON,
		Data:        data,
	}, nil
}

// DecodeCommand reads a command event's body.
func DecodeCommand(e Envelope) (idemgate.Command, error) {
	var c idemgate.Command
	if e.Type != TypeCommandAccepted {
		return c, fmt.Errorf("events: unexpected event type %q", e.Type)
	}
	if !strings.HasPrefix(e.ContentType, ContentTypeJSON) {
		return c, fmt.Errorf("events: unexpected content type %q", e.ContentType)
	}
	if err := json.Unmarshal(e.Data, &c); err != nil {
		return c, fmt.Errorf("events: decode command: %w", err)
	}
	if c.OperationID == "" || c.Tenant == "" || c.Operation == "" || c.OperationID != e.ID {
		return c, fmt.Errorf("events: command event %q is incomplete", e.ID)
	}
	c.TraceParent = e.TraceParent
	return c, nil
}
