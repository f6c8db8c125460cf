package roles

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeListener returns its errors in turn from Accept, then a connection.
type fakeListener struct {
	errs  []error
	calls int
	conn  net.Conn
}

func (l *fakeListener) Accept() (net.Conn, error) {
	l.calls++
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	return l.conn, nil
}

func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// accept4 failing as the kernel makes it fail.
func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// TestGuardWaitsOutEMFILE (issue 9, finding 2): a guarded listener whose
// Accept fails with EMFILE, ENFILE or ECONNABORTED waits and tries again
// until a connection comes, logging once for the whole run of failures;
// other errors (a closed listener) end Accept at once.
func TestGuardWaitsOutEMFILE(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	fake := &fakeListener{conn: server, errs: []error{acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE),
		acceptErr(syscall.ENFILE), acceptErr(syscall.ECONNABORTED), acceptErr(syscall.EMFILE)}}
	start := time.Now()
	c, err := guard(fake, logger).Accept()
	if err != nil || c != server {
		t.Fatalf("Accept = %v, %v; want the connection after the failures", c, err)
	}
	if fake.calls != 6 {
		t.Fatalf("Accept called %d times, want 6", fake.calls)
	}
	// Backoff from 5 ms, doubling: 5+10+20+40+80 ms.
	if took := time.Since(start); took < 150*time.Millisecond || took > 5*time.Second {
		t.Fatalf("the failures were waited out in %v, want about 155ms", took)
	}
	if n := strings.Count(logs.String(), "accept failed; retrying"); n != 1 {
		t.Fatalf("logged %d lines for 5 failures, want 1:\n%s", n, logs.String())
	}

	closed := &fakeListener{errs: []error{net.ErrClosed}}
	if _, err := guard(closed, logger).Accept(); !errors.Is(err, net.ErrClosed) || closed.calls != 1 {
		t.Fatalf("a closed listener: %v after %d calls, want net.ErrClosed at once", err, closed.calls)
	}
}
