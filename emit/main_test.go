package emit

import (
	"testing"

	"github.com/idemgate/idemgate/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }
