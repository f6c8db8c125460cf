package roles

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/sys/unix"

	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/internal/retry"
	"github.com/idemgate/idemgate/logging"
)

// keepInherited marks the inherited sockets among addrs (fd:N)
// close-on-exec at once, before the role starts any process (dev mode's
// PostgreSQL): a child holding a copy would keep the socket listening
// after this process is gone, and take connections nobody answers.
func keepInherited(addrs ...string) {
	for _, a := range addrs {
		if fd, ok, err := config.InheritedFD(a); ok && err == nil {
			syscall.CloseOnExec(fd)
		}
	}
}

// listen opens a role's listen address: host:port, or fd:N, a socket
// already listening that the process inherited (config.InheritedFD); the
// listener owns the descriptor from then on.
func listen(addr string) (net.Listener, error) {
	fd, inherited, err := config.InheritedFD(addr)
	if err != nil {
		return nil, fmt.Errorf("%q is %w", addr, err)
	}
	if !inherited {
		return net.Listen("tcp", addr)
	}
	f := os.NewFile(uintptr(fd), addr)
	defer f.Close() // the listener holds a descriptor of its own
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not a listening socket: %w", addr, err)
	}
	return l, nil
}

// guard keeps a listener accepting when the process runs out of file
// handles (EMFILE, ENFILE) or a connection is aborted before it is
// accepted: Accept waits and tries again, instead of returning an error
// that ends the accept loop for good (as an in-process Kafka's would).
func guard(l net.Listener, logger *slog.Logger) net.Listener {
	return &guarded{Listener: l, log: logging.NewThrottle(logger, 10*time.Second)}
}

type guarded struct {
	net.Listener
	log *logging.Throttle
}

func (g *guarded) Accept() (net.Conn, error) {
	wait := retry.Policy{Base: 5 * time.Millisecond, Max: time.Second}.New()
	for {
		c, err := g.Listener.Accept()
		if err == nil || !retryableAccept(err) {
			return c, err
		}
		g.log.Warn("accept failed; retrying", "addr", g.Addr().String(), "err", err)
		time.Sleep(wait.NextBackOff())
	}
}

func retryableAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// reservedFiles are the file handles kept for the backends (database
// pools, Kafka, an in-process Kafka's own clients and log) when the API's
// connection cap is derived from the process's limit.
const reservedFiles = 512

// limitConnections caps l's open connections at maxConns, lowered if the
// process's file limit would not leave reservedFiles for the rest: past
// the cap, new connections wait in the kernel's listen queue rather than
// take the handles the database and Kafka need.
func limitConnections(l net.Listener, maxConns int, logger *slog.Logger) net.Listener {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Cur != unix.RLIM_INFINITY {
		if room := int(lim.Cur) - reservedFiles; room < maxConns {
			maxConns = room
			logger.Warn("API connections capped below IDEMGATE_MAX_CONNECTIONS by the file limit", "cap", max(maxConns, 16), "nofile", lim.Cur)
		}
	}
	return netutil.LimitListener(l, max(maxConns, 16))
}
