package events

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RefusedError is a broker refusing the client for its configuration: a
// wrong password, a certificate that does not verify, TLS on one side
// only, ACLs that deny it. Trying again meets the same refusal, so a
// process that meets one at start-up stops with this one line instead of
// retrying as it does while a broker is down.
type RefusedError struct {
	// Cause says what was refused, Check which settings to look at.
	Cause, Check string
	Err          error
}

func (e *RefusedError) Error() string {
	msg := strings.ReplaceAll(e.Err.Error(), "\n", " ")
	return fmt.Sprintf("kafka refused the client: %s (check %s): %s", e.Cause, e.Check, msg)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Refused returns err as a *RefusedError when it is a broker's refusal of
// the client's configuration, and nil otherwise.
func Refused(err error) *RefusedError {
	if err == nil {
		return nil
	}
	var r *RefusedError
	if errors.As(err, &r) {
		return r
	}
	refused := func(cause, check string) *RefusedError { return &RefusedError{Cause: cause, Check: check, Err: err} }
	var (
		cve      *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		firstEOF *kgo.ErrFirstReadEOF
		auth     *kadm.AuthError
		op       *net.OpError
	)
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return refused("SASL authentication failed", "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and the password")
	case errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.IllegalSaslState):
		return refused("the broker does not accept this SASL mechanism", "KAFKA_SASL_MECHANISM")
	case errors.As(err, &cve), errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return refused("the broker's TLS certificate does not verify", "KAFKA_TLS_CA_FILE, KAFKA_TLS_SERVER_NAME and KAFKA_BROKERS")
	case errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the broker: it refused our certificate (or
		// its absence), protocol version or ciphers.
		return refused("the broker refused the TLS handshake", "KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE")
	case errors.As(err, &record), errors.As(err, &firstEOF):
		return refused("the broker closed the connection at once: TLS or SASL on one side only", "KAFKA_TLS and KAFKA_SASL_MECHANISM")
	case strings.Contains(err.Error(), "plaintext connection speaking to a tls endpoint"):
		// franz-go's reading of a TLS alert as a response's size; it
		// has no error value to match.
		return refused("a plaintext client on the broker's TLS listener", "KAFKA_TLS and KAFKA_BROKERS")
	case errors.As(err, &auth), errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.GroupAuthorizationFailed):
		return refused("the broker's ACLs deny this client", "the ACLs of KAFKA_SASL_USERNAME")
	}
	return nil
}
