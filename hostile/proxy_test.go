package hostile

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/idemgate/idemgate/testenv"
)

// proxy forwards TCP connections on a port to a target. Nothing listens
// on the port until open is called: a client pointed at it meanwhile is
// refused, as by a server not yet up. The port is held by the test from
// newProxy on (testenv.Port): no other process can take it before open.
type proxy struct {
	t      *testing.T
	port   *testenv.Port
	addr   string
	target string
	mu     sync.Mutex
	l      net.Listener
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	port := testenv.NewPort(t)
	p := &proxy{t: t, port: port, addr: port.Addr(), target: target}
	t.Cleanup(p.close)
	return p
}

// open starts forwarding.
func (p *proxy) open() {
	p.t.Helper()
	l, err := p.port.Listen()
	if err != nil {
		p.t.Fatalf("proxy: %v", err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *proxy) forward(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, u)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(u, c); u.Close() }()
	_, _ = io.Copy(c, u)
	c.Close()
}

func (p *proxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
	}
	for _, c := range p.conns {
		c.Close()
	}
}
