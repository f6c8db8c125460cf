package hostile

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/idemgate/idemgate/testenv"
)

var (
	// env is the suite's PostgreSQL server and Kafka (testenv).
	env *testenv.Env
	// bin is the idemgate binary under test (testenv.Binary), built once
	// for the run, before the first test.
	bin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() { // every hostile test runs processes: none in the fast tier
		testenv.Run(m, &env)
	}
	var err error
	if bin, err = testenv.BuildBinary(); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
	testenv.Run(m, &env)
}
