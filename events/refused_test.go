package events

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestRefused checks which errors count as a broker's refusal of the
// client (not retried at start-up) and which as a broker that may come
// back (retried).
func TestRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		err   error
		cause string // "" = not a refusal
	}{
		"SASL":        {fmt.Errorf("create topics: %w", kerr.SaslAuthenticationFailed), "SASL authentication failed"},
		"Mechanism":   {kerr.UnsupportedSaslMechanism, "does not accept this SASL mechanism"},
		"UnknownCA":   {fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), "certificate does not verify"},
		"Hostname":    {x509.HostnameError{Host: "kafka-0"}, "certificate does not verify"},
		"TLSAlert":    {&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, "refused the TLS handshake"},
		"ACL":         {kerr.TopicAuthorizationFailed, "ACLs deny this client"},
		"Refused":     {&net.OpError{Op: "dial", Err: errors.New("connection refused")}, ""},
		"EOF":         {io.EOF, ""},
		"Deadline":    {context.DeadlineExceeded, ""},
		"NotLeader":   {kerr.NotLeaderForPartition, ""},
		"Nil":         {nil, ""},
		"MultiLine":   {errors.New("line one\nline two: " + kerr.SaslAuthenticationFailed.Error()), ""},
		"AlreadyDone": {&RefusedError{Cause: "c", Check: "k", Err: io.EOF}, "c"},
	} {
		t.Run(name, func(t *testing.T) {
			r := Refused(tc.err)
			if tc.cause == "" {
				if r != nil {
					t.Fatalf("Refused(%v) = %v, want nil", tc.err, r)
				}
				return
			}
			if r == nil || r.Cause != tc.cause && !strings.Contains(r.Cause, tc.cause) {
				t.Fatalf("Refused(%v) = %v, want cause %q", tc.err, r, tc.cause)
			}
			if !errors.Is(r, tc.err) {
				t.Fatalf("the refusal does not wrap %v", tc.err)
			}
		})
	}
	t.Run("OneLine", func(t *testing.T) {
		r := &RefusedError{Cause: "c", Check: "k", Err: errors.New("a\nb")}
		if strings.Contains(r.Error(), "\n") {
			t.Fatalf("%q spans lines", r.Error())
		}
	})
}
