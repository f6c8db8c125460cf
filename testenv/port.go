package testenv

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Port is a loopback TCP port held for one test from NewPort until the
// test ends, so that servers can come and go on it with no window in
// which another process takes it: never pick a free port and bind it
// later.
//
// It is held by a socket bound to it that never listens. While no
// listener of the Port is open, a connection to it is refused, as by a
// server that is down. Listen, File and Fd open listeners on the same
// port beside the holding socket (SO_REUSEPORT, which only sockets of
// this user that ask for it may share: nothing else can bind the port).
// A listener must not outlive its server: a copy of it left in another
// process (a child that inherited it) would go on listening beside the
// next one and take some of its connections.
type Port struct {
	port int
	hold int // the holding socket
}

// NewPort reserves a port on 127.0.0.1 (the kernel's choice) until t
// ends.
func NewPort(t testing.TB) *Port {
	t.Helper()
	// No SO_REUSEADDR on the holding socket: with it, a socket that asks
	// for SO_REUSEADDR alone (Go's net.Listen) could bind the port while
	// no listener of ours is open.
	fd, err := reusePortSocket(unix.SO_REUSEPORT)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	}
	var sa unix.Sockaddr
	if err == nil {
		sa, err = unix.Getsockname(fd)
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("testenv: reserve a port: %v", err)
	}
	p := &Port{port: sa.(*unix.SockaddrInet4).Port, hold: fd}
	held.Store(p.Addr(), p)
	t.Cleanup(func() {
		held.Delete(p.Addr())
		unix.Close(p.hold)
	})
	return p
}

// held are the ports NewPort holds, by address: a process given one's
// address (Proc) inherits a listener on it.
var held sync.Map

// heldPort is the held port of addr, or nil.
func heldPort(addr string) *Port {
	if p, ok := held.Load(addr); ok {
		return p.(*Port)
	}
	return nil
}

// Addr is the port's address, 127.0.0.1:port.
func (p *Port) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// Number is the port number.
func (p *Port) Number() int { return p.port }

// Listen opens a listener on the port in this process; once it is closed,
// connections are refused again until the next Listen.
func (p *Port) Listen() (net.Listener, error) {
	f, err := p.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return net.FileListener(f)
}

// File opens a socket listening on the port, for a child process
// (exec.Cmd.ExtraFiles: the child's file descriptor 3+i, which idemgate
// takes as IDEMGATE_ADDR=fd:3). Close it once the child has started: the
// child's copy listens for as long as the child lives.
func (p *Port) File() (*os.File, error) {
	fd, err := p.listenFD()
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "listener "+p.Addr()), nil
}

// Fd opens a socket listening on the port for a role started in this
// process, and names it as a listen address ("fd:N"): the role owns the
// file descriptor from then on and closes it when it stops.
func (p *Port) Fd() (string, error) {
	fd, err := p.listenFD()
	if err != nil {
		return "", err
	}
	return "fd:" + strconv.Itoa(fd), nil
}

func (p *Port) listenFD() (int, error) {
	// SO_REUSEADDR too: the connections of a previous listener may linger
	// in TIME_WAIT on the port.
	fd, err := reusePortSocket(unix.SO_REUSEPORT, unix.SO_REUSEADDR)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: p.port}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("testenv: bind %s: %w", p.Addr(), err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("testenv: listen on %s: %w", p.Addr(), err)
	}
	return fd, nil
}

func reusePortSocket(opts ...int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, opt := range opts {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}
