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

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/config"
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

// TestStoppedWhileStartingIsACleanStop: a role asked to stop (its context
// ended) while it still waits for its backends ends with nil, as it does
// once running; a start that fails for another reason still fails.
func TestStoppedWhileStartingIsACleanStop(t *testing.T) {
	reg, err := idemgate.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	// Nothing listens on port 1: every connection is refused.
	cfg.DatabaseURL, cfg.KafkaBrokers = "postgres://postgres@127.0.0.1:1/idemgate?sslmode=disable&connect_timeout=1", []string{"127.0.0.1:1"}
	cfg.APIKeys = map[string]string{"k": "tenant-a"}
	o := Options{Config: cfg, Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for name, role := range map[string]func(context.Context, Options) error{"serve": Serve, "project": Project, "relay": Relay} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- role(ctx, o) }()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s stopped while starting: %v, want nil", name, err)
		}
	}
	bad := o
	bad.Config.DatabaseURL = ""
	if err := Project(context.Background(), bad); err == nil {
		t.Error("a role with no DATABASE_URL started")
	}
}

// TestDevBannerNamesTheConsole: dev prints the console's URL and the
// operator keys of the environment (not a file's).
func TestDevBannerNamesTheConsole(t *testing.T) {
	var buf strings.Builder
	printConsole(&buf, "127.0.0.1:8080", config.Config{OperatorKeys: map[string]string{config.DevOperatorKey: "*"}, OperatorKeysFile: "/run/ops"})
	for _, want := range []string{"operator console on http://127.0.0.1:8080/console/", "operator key dev-operator -> scope *", "operator keys from /run/ops"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("banner %q lacks %q", buf.String(), want)
		}
	}
}
