package events

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
)

func TestCommandRoundTrip(t *testing.T) {
	cmd := idemgate.Command{OperationID: "0b1c", Tenant: "tenant-a", Operation: "payments.create", IdempotencyKey: "a/b",
		Request: json.RawMessage(`{"amount":1}`), AcceptedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}
	env, err := CommandAccepted(cmd)
	if err != nil {
		t.Fatal(err)
	}
	rec := env.Record("idemgate.commands", IdentityKey(cmd.Tenant, cmd.Operation, cmd.IdempotencyKey))
	if string(rec.Key) != "tenant-a/payments.create/a/b" {
		t.Fatalf("key = %q", rec.Key)
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	for k, want := range map[string]string{"ce_specversion": "1.0", "ce_id": "0b1c", "ce_type": TypeCommandAccepted,
		"ce_source": Source, "content-type": "application/json", "ce_subject": "payments.create"} {
		if headers[k] != want {
			t.Fatalf("header %s = %q, want %q", k, headers[k], want)
		}
	}
	back, err := Decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommand(back)
	if err != nil {
		t.Fatal(err)
	}
	if got.OperationID != cmd.OperationID || got.IdempotencyKey != cmd.IdempotencyKey || !got.AcceptedAt.Equal(cmd.AcceptedAt) || string(got.Request) != `{"amount":1}` {
		t.Fatalf("round trip = %+v", got)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, rec := range map[string]*kgo.Record{
		"ErrNoHeaders":  {Value: []byte("x")},
		"ErrNoID":       {Headers: []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_type", Value: []byte("t")}, {Key: "ce_source", Value: []byte("s")}}},
		"ErrBadTime":    {Headers: []kgo.RecordHeader{{Key: "ce_time", Value: []byte("yesterday")}}},
		"ErrOldVersion": {Headers: []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("0.3")}, {Key: "ce_id", Value: []byte("1")}, {Key: "ce_type", Value: []byte("t")}, {Key: "ce_source", Value: []byte("s")}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(rec); !errors.Is(err, ErrNotCloudEvent) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("ErrCommandMismatchedID", func(t *testing.T) {
		env := Envelope{ID: "other", Type: TypeCommandAccepted, Source: Source, ContentType: "application/json",
			Data: []byte(`{"operation_id":"x","tenant":"t","operation":"o","request":{}}`)}
		if _, err := DecodeCommand(env); err == nil {
			t.Fatal("a command whose body names another operation than its event id must be refused")
		}
	})
}
