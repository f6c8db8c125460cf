// Command latencyproxy forwards TCP connections to a backend and delays
// every round trip through it, for scripts/regions.sh: each region's
// roles reach the shared database through one, as across a WAN.
//
//	go run ./scripts/latencyproxy --listen 127.0.0.1:24102 --target 127.0.0.1:24100 --latency 30ms
//
// The target may be a Unix socket (--target /path/.s.PGSQL.5432). The
// latency is toxiproxy's latency toxic (github.com/Shopify/toxiproxy/v2,
// in-process) on what the backend sends: each request-answer exchange
// takes --latency longer, as testenv.NetFault.Latency does in the tests.
// It prints "latencyproxy: listening on <addr>" on stderr once it
// listens, and runs until it is killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/rs/zerolog"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "backend: host:port, or the path of a Unix socket")
	latency := flag.Duration("latency", 0, "added to every round trip")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "latencyproxy: --target is required")
		os.Exit(2)
	}
	network := "tcp"
	if strings.HasPrefix(*target, "/") {
		network = "unix"
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latencyproxy:", err)
		os.Exit(1)
	}
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(server, "latency", l.Addr().String(), *target)
	if *latency > 0 {
		body := fmt.Sprintf(`{"name":"latency","type":"latency","stream":"downstream","attributes":{"latency":%d}}`,
			latency.Milliseconds())
		if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			fmt.Fprintln(os.Stderr, "latencyproxy:", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "latencyproxy: listening on %s, to %s %s, latency %v\n", l.Addr(), network, *target, *latency)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		client, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fmt.Fprintln(os.Stderr, "latencyproxy: accept:", err)
			time.Sleep(50 * time.Millisecond) // out of file handles, say: not a busy loop
			continue
		}
		go func() {
			upstream, err := net.DialTimeout(network, *target, 5*time.Second)
			if err != nil {
				client.Close() // the backend is down: the client sees its connection refused, closed
				return
			}
			name := client.RemoteAddr().String()
			proxy.Toxics.StartLink(server, name+"upstream", client, upstream, stream.Upstream)
			proxy.Toxics.StartLink(server, name+"downstream", upstream, client, stream.Downstream)
		}()
	}
}
