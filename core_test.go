package idemgate_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestCoreDoesNotImportPayments proves with `go list -deps` that the core
// packages build without the payments module: payments is a plug-in that
// registers itself, not part of the pipeline.
func TestCoreDoesNotImportPayments(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs go list")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go command is needed to list dependencies")
	}
	core := []string{".", "./command", "./emit", "./retention", "./health", "./internal/retry", "./events", "./consumer", "./projector", "./store", "./sqldb", "./roles", "./validate"}
	out, err := exec.Command("go", append([]string{"list", "-deps"}, core...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed only %d packages: %s", len(deps), out)
	}
	for _, want := range []string{"github.com/idemgate/idemgate/store", "github.com/twmb/franz-go/pkg/kgo"} {
		if !slices.Contains(deps, want) {
			t.Fatalf("go list -deps does not list %s: the check would be vacuous", want)
		}
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/idemgate/idemgate/payments") || strings.HasPrefix(d, "github.com/idemgate/idemgate/examples") {
			t.Errorf("a core package depends on %s", d)
		}
	}
}
