package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// NetFault is a TCP proxy of one test's own in front of a backend, on a
// held port (NewPort), through which the test's roles reach the backend
// and on which the test breaks the network between them with toxiproxy's
// toxics (github.com/Shopify/toxiproxy/v2, in-process): latency, a
// partition, connections that hang half-open.
//
// The accept loop is ours, not toxiproxy's Proxy.Start: toxiproxy binds
// its listen address itself (net.Listen), which cannot share a held port,
// and would bind it again after each partition, leaving the port free for
// a moment; and the backend may be a Unix socket (pgserver's), which
// toxiproxy does not dial. Each connection accepted is piped through the
// toxics of a toxiproxy.Proxy (ToxicCollection.StartLink), as toxiproxy's
// own server does.
type NetFault struct {
	t       testing.TB
	port    *Port
	network string // the backend's: "tcp", or "unix" for a socket
	target  string
	server  *toxiproxy.ApiServer

	mu       sync.Mutex
	proxy    *toxiproxy.Proxy // the toxics of the connections to come
	l        net.Listener     // nil while partitioned
	conns    map[net.Conn]struct{}
	hung     bool // HalfOpen since the last Heal
	closed   bool
	accepted int
}

// NewNetFault starts a proxy to target (network "tcp" or "unix") on a
// port of its own, passing everything through until a fault is set; it is
// closed when t ends.
func NewNetFault(t testing.TB, network, target string) *NetFault {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	f := &NetFault{t: t, port: NewPort(t), network: network, target: target, server: server,
		conns: map[net.Conn]struct{}{}}
	f.proxy = f.newProxy()
	t.Cleanup(f.Close)
	f.listen()
	return f
}

// NewDBNetFault starts a NetFault in front of the PostgreSQL server of
// dbURL (a URL; its host a TCP address or, as pgserver's, a Unix socket
// folder) and returns it with the URL of the same database through it.
func NewDBNetFault(t testing.TB, dbURL string) (f *NetFault, proxiedURL string) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	network, target := "tcp", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	if strings.HasPrefix(cfg.Host, "/") {
		network, target = "unix", filepath.Join(cfg.Host, fmt.Sprintf(".s.PGSQL.%d", cfg.Port))
	}
	f = NewNetFault(t, network, target)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("testenv: DATABASE_URL is not a URL: %v", err)
	}
	q := u.Query()
	q.Del("host")
	q.Del("port")
	u.RawQuery = q.Encode()
	u.Host = f.Addr()
	return f, u.String()
}

// Addr is the proxy's address, 127.0.0.1:port, the same for its whole
// life.
func (f *NetFault) Addr() string { return f.port.Addr() }

// Accepted counts the connections the proxy has accepted.
func (f *NetFault) Accepted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted
}

func (f *NetFault) newProxy() *toxiproxy.Proxy {
	return toxiproxy.NewProxy(f.server, "netfault", f.port.Addr(), f.target)
}

func (f *NetFault) listen() {
	f.t.Helper()
	l, err := f.port.Listen()
	if err != nil {
		f.t.Fatalf("testenv: netfault: %v", err)
	}
	f.mu.Lock()
	f.l = l
	f.mu.Unlock()
	go f.accept(l)
}

func (f *NetFault) accept(l net.Listener) {
	for {
		client, err := l.Accept()
		if err != nil {
			return
		}
		upstream, err := net.DialTimeout(f.network, f.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		f.mu.Lock()
		if f.closed || f.l != l { // partitioned meanwhile
			f.mu.Unlock()
			client.Close()
			upstream.Close()
			continue
		}
		f.conns[client], f.conns[upstream] = struct{}{}, struct{}{}
		f.accepted++
		toxics := f.proxy.Toxics
		f.mu.Unlock()
		name := client.RemoteAddr().String()
		toxics.StartLink(f.server, name+"upstream", client, &tracked{upstream, f}, stream.Upstream)
		toxics.StartLink(f.server, name+"downstream", upstream, &tracked{client, f}, stream.Downstream)
	}
}

// tracked closes its connection and forgets it.
type tracked struct {
	net.Conn
	f *NetFault
}

func (c *tracked) Close() error {
	c.f.mu.Lock()
	delete(c.f.conns, c.Conn)
	c.f.mu.Unlock()
	return c.Conn.Close()
}

// toxic adds a toxic of the given type and attributes on the given
// streams, to the connections open and to come.
func (f *NetFault) toxic(typ string, attributes string, streams ...string) {
	f.t.Helper()
	f.mu.Lock()
	toxics := f.proxy.Toxics
	f.mu.Unlock()
	for _, s := range streams {
		body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"attributes":%s}`, typ+"_"+s, typ, s, attributes)
		if _, err := toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			f.t.Fatalf("testenv: netfault: add %s: %v", body, err)
		}
	}
}

// Latency delays what the backend sends by d (toxiproxy's latency toxic,
// downstream): every round trip through the proxy takes d longer.
func (f *NetFault) Latency(d time.Duration) {
	f.t.Helper()
	f.toxic("latency", fmt.Sprintf(`{"latency":%d}`, d.Milliseconds()), "downstream")
}

// HalfOpen makes every connection hang: those open stay open but pass
// nothing either way, and new ones are accepted and pass nothing
// (toxiproxy's timeout toxic with timeout 0, which drops the data): a
// backend behind a partition that drops packets, or a peer that vanished
// without a reset. Only the client's own timeouts can notice.
func (f *NetFault) HalfOpen() {
	f.t.Helper()
	f.toxic("timeout", `{"timeout":0}`, "upstream", "downstream")
	f.mu.Lock()
	f.hung = true
	f.mu.Unlock()
}

// Partition cuts the link: the open connections are closed and new ones
// refused until Heal (toxiproxy's way: the proxy disabled). The port stays
// held meanwhile.
func (f *NetFault) Partition() {
	f.mu.Lock()
	l := f.l
	f.l = nil
	conns := make([]net.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	clear(f.conns)
	f.mu.Unlock()
	if l == nil {
		return
	}
	l.Close()
	for _, c := range conns {
		c.Close()
	}
}

// Heal ends the faults for the connections to come, which pass everything
// again; after a Partition the proxy accepts again. The connections open
// through a HalfOpen stay hung for good, as toward a peer that vanished:
// their client must notice and drop them (toxiproxy would close them as
// the timeout toxic goes, which would hide a client that never notices).
// Open connections lose their latency.
func (f *NetFault) Heal() {
	f.t.Helper()
	f.mu.Lock()
	old := f.proxy
	if f.hung {
		f.proxy, f.hung = f.newProxy(), false
	}
	partitioned := f.l == nil && !f.closed
	f.mu.Unlock()
	if old == f.proxy {
		old.Toxics.ResetToxics(context.Background())
	} else {
		_ = old.Toxics.RemoveToxic(context.Background(), "latency_downstream")
	}
	if partitioned {
		f.listen()
	}
}

// Open counts the connections open through the proxy.
func (f *NetFault) Open() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns) / 2
}

// Close stops the proxy and closes its connections.
func (f *NetFault) Close() {
	f.Partition()
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}
