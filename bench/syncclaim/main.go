// Command syncclaim is the benchmark's baseline S: the smallest synchronous
// idempotency middleware that keeps the same promise as idemgate's 202 (a
// durable claim per tenant and key, the first answer replayed on a retry).
// It exists so that idemgate's figures are read as ratios against it,
// measured on the same machine in the same run (scripts/bench.sh). It emits
// no event: bench/syncoutbox (SO) is the baseline that does.
//
// Usage: DATABASE_URL=... syncclaim -addr 127.0.0.1:8081 -keys key=tenant
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/idemgate/idemgate/bench/internal/syncapi"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	keys := flag.String("keys", "bench-key=tenant-bench", "API keys: key=tenant,...")
	flag.Parse()
	ctx, done, pool, tenants, err := syncapi.Setup(*keys, "")
	if err != nil {
		fail(err)
	}
	defer done()
	if err := syncapi.Serve(ctx, *addr, syncapi.Handler(pool, tenants, nil)); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "syncclaim:", err)
	os.Exit(1)
}
