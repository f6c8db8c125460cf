package hostile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/idemgate/idemgate/testenv"
)

var (
	// env is the suite's PostgreSQL server and Kafka (testenv).
	env *testenv.Env
	// bin is the idemgate binary under test, built once for the run.
	bin string
)

// TestMain builds cmd/idemgate, starts the backends, runs the tests and
// removes the binary.
func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "idemgate-hostile-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "idemgate")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/idemgate/idemgate/cmd/idemgate").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "hostile: go build: %v\n%s", err, out)
		return 1
	}
	e, stop, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile: testenv:", err)
		return 1
	}
	defer stop()
	env = e
	return m.Run()
}
