package idemgate_test

import (
	"testing"
	"time"

	"github.com/idemgate/idemgate"
)

// The deployment's per-operation setting wins, then the operation's own,
// then the deployment's default, then DefaultRetention.
func TestRetentionPrecedence(t *testing.T) {
	own := idemgate.Operation{Name: "a", Retention: 2 * time.Hour}
	none := idemgate.Operation{Name: "b"}
	r := idemgate.Retention{Default: 5 * time.Hour, ByOperation: map[string]time.Duration{"a": time.Hour, "c": 3 * time.Hour}}
	for _, tc := range []struct {
		what string
		r    idemgate.Retention
		op   idemgate.Operation
		want time.Duration
	}{
		{"per operation over the operation's own", r, own, time.Hour},
		{"the operation's own over the default", idemgate.Retention{Default: 5 * time.Hour}, own, 2 * time.Hour},
		{"the deployment's default", r, none, 5 * time.Hour},
		{"no setting at all", idemgate.Retention{}, none, idemgate.DefaultRetention},
	} {
		if got := tc.r.For(tc.op); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.what, got, tc.want)
		}
	}
}
