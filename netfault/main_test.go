package netfault

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/idemgate/idemgate/testenv"
)

// env is the suite's PostgreSQL server and Kafka (testenv).
var env *testenv.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() { // the binary the roles run, built once before the first test
		if _, err := testenv.BuildBinary(); err != nil {
			fmt.Fprintln(os.Stderr, "netfault:", err)
			os.Exit(1)
		}
	}
	testenv.Run(m, &env)
}
