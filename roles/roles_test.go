package roles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/sqldb"
)

// TestRetryStartup checks a role waits out a backend outage at start but
// gives up at once on a configuration mistake.
func TestRetryStartup(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("OutageThenUp", func(t *testing.T) {
		calls := 0
		err := RetryStartup(context.Background(), logger, "database", func() error {
			calls++
			if calls < 3 {
				return &net.OpError{Op: "dial", Err: errors.New("connection refused")}
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("err %v after %d calls; want nil after 3", err, calls)
		}
	})
	t.Run("ErrBadURL", func(t *testing.T) {
		calls := 0
		err := RetryStartup(context.Background(), logger, "database", func() error {
			calls++
			return fmt.Errorf("%w: bad", sqldb.ErrBadURL)
		})
		if !errors.Is(err, sqldb.ErrBadURL) || calls != 1 {
			t.Fatalf("err %v after %d calls; want ErrBadURL after 1", err, calls)
		}
	})
	t.Run("StopsOnShutdown", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := RetryStartup(ctx, logger, "kafka", func() error { return &net.OpError{Op: "dial", Err: errors.New("refused")} })
		if err == nil || !strings.Contains(err.Error(), "kafka unreachable") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestRetryStartupRefused checks a broker's refusal of the client (a
// wrong password, say) ends the start at once: retrying meets it again.
func TestRetryStartupRefused(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	calls := 0
	refusal := &events.RefusedError{Cause: "SASL authentication failed", Check: "the password", Err: kerr.SaslAuthenticationFailed}
	err := RetryStartup(context.Background(), logger, "kafka", func() error {
		calls++
		return fmt.Errorf("wrapped: %w", refusal)
	})
	if !errors.Is(err, kerr.SaslAuthenticationFailed) || calls != 1 {
		t.Fatalf("err %v after %d calls; want the refusal after 1", err, calls)
	}
}
