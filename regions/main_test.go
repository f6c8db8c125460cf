// Package regions tests two idemgate regions on real backends (issue 20,
// docs/MULTI-REGION.md): one PostgreSQL shared by both, a Kafka broker of
// each region's own (scripts/kafka.sh), serve, project and relay per
// region as child processes, each region reaching the database through a
// latency proxy (testenv.NetFault). The scripts' counterpart for people
// is scripts/regions.sh.
package regions

import (
	"testing"

	"github.com/idemgate/idemgate/testenv"
)

// env is the suite's PostgreSQL server (testenv).
var env *testenv.Env

// TestMain builds the binary the roles run before the first test.
func TestMain(m *testing.M) { testenv.RunBuilt(m, &env) }
