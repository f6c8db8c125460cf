package projector

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/idemgate/idemgate"
)

// TestIsPermanent: only what will fail on every retry is permanent, and
// so dead-lettered after bounded attempts; an outage is never recorded as
// a failed command.
func TestIsPermanent(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"OKApplierPermanent":    {fmt.Errorf("apply: %w", idemgate.ErrPermanent), true},
		"OKBadData":             {&pgconn.PgError{Code: "22P02"}, true},
		"OKConstraint":          {&pgconn.PgError{Code: "23514"}, true},
		"ErrSerialization":      {fmt.Errorf("tx: %w", &pgconn.PgError{Code: "40001"}), false},
		"ErrConnectionLost":     {&pgconn.PgError{Code: "08003"}, false},
		"ErrTimeout":            {context.DeadlineExceeded, false},
		"ErrUnknownBelowSQL":    {errors.New("read tcp: connection reset by peer"), false},
		"OKPermanentOverOutage": {fmt.Errorf("%w: %w", idemgate.ErrPermanent, context.Canceled), true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := IsPermanent(tc.err); got != tc.want {
				t.Fatalf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
