package idemgate_test

import (
	"fmt"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/payments"
)

// A program protects its own commands by registering a Module, as the
// reference payments service does; the registry is what the roles take.
// (The package documentation's example; running it keeps it compiling.)
func Example() {
	reg, err := idemgate.NewRegistry(payments.Module(payments.Config{}))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, op := range reg.Operations() {
		fmt.Println(op.Name, "POST", op.Path)
	}
	// Output:
	// payments.create POST /v1/payments
	// refunds.create POST /v1/payments/{paymentID}/refunds
}
