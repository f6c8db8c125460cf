package client_test

import (
	"testing"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/client"
	"github.com/idemgate/idemgate/payments"
)

// The SDK keeps its own Kind values, so that a program using it does not
// link the server's packages; each is the server's ProblemType of the
// same meaning, byte for byte.
func TestKindsAreTheServersProblemTypes(t *testing.T) {
	for kind, typ := range map[client.Kind]idemgate.ProblemType{
		client.ErrUnauthorized:         idemgate.ProblemUnauthorized,
		client.ErrKeyMissing:           idemgate.ProblemKeyMissing,
		client.ErrKeyMalformed:         idemgate.ProblemKeyMalformed,
		client.ErrMalformedJSON:        idemgate.ProblemMalformedJSON,
		client.ErrValidation:           idemgate.ProblemValidationFailed,
		client.ErrUnsupportedMediaType: idemgate.ProblemUnsupportedMediaType,
		client.ErrBodyTooLarge:         idemgate.ProblemBodyTooLarge,
		client.ErrKeyReused:            idemgate.ProblemKeyReused,
		client.ErrNotFound:             idemgate.ProblemNotFound,
		client.ErrUnavailable:          idemgate.ProblemUnavailable,
		client.ErrProcessingFailed:     idemgate.ProblemProcessingFailed,
		client.ErrUpstreamFailed:       idemgate.ProblemUpstreamFailed,
		client.ErrPaymentDeclined:      payments.ProblemPaymentDeclined,
		client.ErrRefundExceedsPayment: payments.ProblemRefundExceedsPayment,
	} {
		if string(kind) != string(typ) {
			t.Errorf("client kind %q, server type %q", kind, typ)
		}
	}
	if client.ProblemBase != idemgate.ProblemBase {
		t.Errorf("client.ProblemBase %q, server's %q", client.ProblemBase, idemgate.ProblemBase)
	}
}
