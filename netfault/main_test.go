package netfault

import (
	"testing"

	"github.com/idemgate/idemgate/testenv"
)

// env is the suite's PostgreSQL server and Kafka (testenv).
var env *testenv.Env

// TestMain builds the binary the roles run before the first test.
func TestMain(m *testing.M) { testenv.RunBuilt(m, &env) }
