package roles

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestListenInherited: fd:N serves on the listening socket the process
// inherited as descriptor N, and takes it over.
func TestListenInherited(t *testing.T) {
	parent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	// A descriptor of its own, as a child would inherit it.
	rc, err := parent.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd, err = syscall.Dup(int(s)) }); err != nil || fd < 0 {
		t.Fatalf("dup: %v", err)
	}
	keepInherited("fd:" + strconv.Itoa(fd))
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("fd %d flags %#x (%v): want close-on-exec, so that no child keeps the socket", fd, flags, err)
	}
	l, err := listen("fd:" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr().String() != parent.Addr().String() {
		t.Fatalf("inherited listener on %s, want %s", l.Addr(), parent.Addr())
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", parent.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "hi" {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := listen("fd:2"); err == nil {
		t.Fatal("fd:2 accepted")
	}
}
