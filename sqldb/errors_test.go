package sqldb_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/idemgate/idemgate/sqldb"
)

// TestIsTransient pins which failures are retried (the work is done
// later) and which are the data's own (the same statement fails again):
// a wrong answer either way loses commands or retries poison for ever.
func TestIsTransient(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("apply: %w", &pgconn.PgError{Code: code}) }
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"OKSerializationFailure": {pg("40001"), true},
		"OKDeadlock":             {pg("40P01"), true},
		"OKConnectionFailure":    {pg("08006"), true},
		"OKTooManyConnections":   {pg("53300"), true},
		"OKAdminShutdown":        {pg("57P01"), true},
		"OKStatementTimeout":     {pg("57014"), true},
		"OKSystemError":          {pg("58000"), true},
		"OKInternalError":        {pg("XX000"), true},
		"OKReadOnlyStandby":      {pg("25006"), true},
		"OKStandbyConnection":    {fmt.Errorf("acquire: %w", sqldb.ErrStandby), true},
		"OKReadOnlyAtConnect":    {fmt.Errorf("connect: %w", pgconn.ErrReadOnlyConnection), true},
		"OKContextCanceled":      {fmt.Errorf("q: %w", context.Canceled), true},
		"OKDeadlineExceeded":     {context.DeadlineExceeded, true},
		"OKNetwork":              {&net.OpError{Op: "dial", Err: errors.New("refused")}, true},
		"ErrUniqueViolation":     {pg("23505"), false},
		"ErrBadText":             {pg("22021"), false},
		"ErrUndefinedTable":      {pg("42P01"), false},
		"ErrNil":                 {nil, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := sqldb.IsTransient(tc.err); got != tc.want {
				t.Fatalf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
