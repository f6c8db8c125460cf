package testenv

import (
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
)

func dial(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// TestPort: refused while no listener is open, served while one is, and
// nobody else can bind the port meanwhile, across several listeners and
// the TIME_WAIT connections the previous ones leave.
func TestPort(t *testing.T) {
	p := NewPort(t)
	if err := dial(p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial before Listen: %v, want connection refused", err)
	}
	for i := range 3 {
		if l, err := net.Listen("tcp", p.Addr()); err == nil {
			l.Close()
			t.Fatal("another listener could bind the held port")
		}
		l, err := p.Listen()
		if err != nil {
			t.Fatalf("listen %d: %v", i, err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
		go func() { _ = srv.Serve(l) }()
		for range 5 {
			resp, err := http.Get("http://" + p.Addr())
			if err != nil {
				t.Fatalf("listener %d: %v", i, err)
			}
			resp.Body.Close()
		}
		srv.Close() // the server closes the connections: TIME_WAIT on the port
		if err := dial(p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial after Close: %v, want connection refused", err)
		}
	}
}
