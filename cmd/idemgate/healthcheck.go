package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthcheck probes a health endpoint and succeeds when it answers 200:
// the probe of images without a shell (distroless), for a compose file or
// an orchestrator. The default URL is the API's /readyz on IDEMGATE_ADDR
// (a wildcard host probed on loopback); an inherited socket (fd:N) has
// no address to probe, and needs --url.
func healthcheck(ctx context.Context, addr string, args []string, stdout, stderr io.Writer) error {
	def := ""
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		def = "http://" + net.JoinHostPort(host, port) + "/readyz"
	}
	fs := newFlagSet("healthcheck")
	url := fs.String("url", def, "endpoint to probe (e.g. http://127.0.0.1:9090/readyz for project and relay)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *url == "" {
		return &usageError{fmt.Sprintf("healthcheck: IDEMGATE_ADDR=%s is an inherited socket: give --url", addr)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return &usageError{fmt.Sprintf("healthcheck: --url %q: %v", *url, err)}
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %s: %v", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	line := strings.Join(strings.Fields(string(body)), " ")
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d: %s", *url, resp.StatusCode, line)
	}
	fmt.Fprintf(stdout, "ok: %s: %s\n", *url, line)
	return nil
}
