package testenv

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echo is a line echo server on a port of t's own.
func echo(t *testing.T) string {
	t.Helper()
	l, err := NewPort(t).Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

// roundTrip sends a line on c and reads it back within d.
func roundTrip(c net.Conn, r *bufio.Reader, d time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err == nil && line != "ping\n" {
		err = errors.New("echoed " + line)
	}
	return err
}

func TestNetFault(t *testing.T) {
	f := NewNetFault(t, "tcp", echo(t))
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", f.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	c, r := dial()
	if err := roundTrip(c, r, time.Second); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	f.Latency(150 * time.Millisecond)
	start := time.Now()
	if err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatalf("with latency: %v", err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("a round trip with 150ms of latency took %v", took)
	}
	f.Heal()

	f.HalfOpen()
	if err := roundTrip(c, r, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("half-open: %v, want a timeout (nothing passes, nothing closes)", err)
	}
	hung, hr := dial() // a new connection is accepted, and hangs too
	if err := roundTrip(hung, hr, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection opened while half-open: %v, want a timeout", err)
	}
	f.Heal()
	if err := roundTrip(hung, hr, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a hung connection after Heal: %v, want it still hung", err)
	}
	fresh, fr := dial()
	if err := roundTrip(fresh, fr, time.Second); err != nil {
		t.Fatalf("a new connection after Heal: %v", err)
	}
	c.Close()
	hung.Close()
	Eventually(t, 5*time.Second, "the clients' closes reach the proxy", func() error {
		return Check(f.Open() == 1, "%d connections open, want 1", f.Open())
	})

	f.Partition()
	if err := roundTrip(fresh, fr, time.Second); err == nil {
		t.Fatal("an open connection passed data through a partition")
	}
	if c, err := net.Dial("tcp", f.Addr()); err == nil {
		c.Close()
		t.Fatal("a connection was accepted through a partition")
	}
	f.Heal()
	again, ar := dial()
	if err := roundTrip(again, ar, time.Second); err != nil {
		t.Fatalf("after the partition healed: %v", err)
	}
}
