package hostile

import (
	"testing"

	"github.com/idemgate/idemgate/testenv"
)

// env is the suite's PostgreSQL server and Kafka (testenv).
var env *testenv.Env

// TestMain builds the binary under test (testenv.Binary) once for the
// run, before the first test; every hostile test runs processes, so
// none is built in the fast tier (-short).
func TestMain(m *testing.M) { testenv.RunBuilt(m, &env) }
