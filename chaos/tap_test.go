package chaos

// The tap: a TCP relay between the projectors and the orders service,
// which passes bytes through unchanged. It exists so that the killer can
// kill a projector while its call is in flight at the worst moment: the
// upstream has acted and answered, the answer has not reached the caller.
// Armed, the tap holds the next answer, names the connection's caller
// (found through /proc), and drops the answer once the caller is dead.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// tap relays listen to target. Its port is held by the test for the
// whole run (testenv.Port): refused while the tap is closed, and never
// free for another process to take.
type tap struct {
	port   *testenv.Port
	listen string      // port's address
	armed  chan *catch // at most one catch waits here

	mu     sync.Mutex
	target string // the orders service's address (its port changes at each start)
	l      net.Listener
	conns  map[net.Conn]bool
}

// catch is a request to hold the next answer: got receives the caller's
// address (as the tap sees it), release lets the tap drop the answer.
type catch struct {
	got     chan string
	release chan struct{}
}

// retarget points the tap at the orders service's address.
func (t *tap) retarget(addr string) {
	t.mu.Lock()
	t.target = addr
	t.mu.Unlock()
}

func (t *tap) open() error {
	l, err := t.port.Listen()
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.l = l
	if t.conns == nil {
		t.conns = map[net.Conn]bool{}
	}
	t.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go t.pipe(c)
		}
	}()
	return nil
}

// close stops listening (new calls are refused) and cuts every relayed
// connection.
func (t *tap) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.l != nil {
		_ = t.l.Close()
		t.l = nil
	}
	for c := range t.conns {
		_ = c.Close()
	}
}

func (t *tap) track(cs ...net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.l == nil {
		return false // closed meanwhile
	}
	for _, c := range cs {
		t.conns[c] = true
	}
	return true
}

func (t *tap) untrack(cs ...net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range cs {
		delete(t.conns, c)
		_ = c.Close()
	}
}

// pipe relays one connection; either side's end ends both.
func (t *tap) pipe(client net.Conn) {
	t.mu.Lock()
	target := t.target
	t.mu.Unlock()
	up, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	if !t.track(client, up) {
		_ = client.Close()
		_ = up.Close()
		return
	}
	defer t.untrack(client, up)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if _, werr := up.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		t.untrack(client, up)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			select {
			case k := <-t.armed:
				// The upstream has answered: its effect is recorded. The
				// caller does not get the answer.
				k.got <- client.RemoteAddr().String()
				select {
				case <-k.release:
				case <-time.After(10 * time.Second):
				}
				return
			default:
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// catchCall arms the tap and waits up to within for an answer to hold.
// It returns the caller's address and a func that drops the answer.
func (t *tap) catchCall(within time.Duration) (caller string, release func(), ok bool) {
	k := &catch{got: make(chan string, 1), release: make(chan struct{})}
	t.armed <- k
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case a := <-k.got:
		return a, func() { close(k.release) }, true
	case <-timer.C:
	}
	select { // disarm, unless a pipe took the catch meanwhile
	case <-t.armed:
		return "", nil, false
	case a := <-k.got:
		return a, func() { close(k.release) }, true
	}
}

// socketOwner finds which of pids holds the client end of a loopback TCP
// connection from caller ("127.0.0.1:port") to the tap: its socket inode
// from /proc/net/tcp, then the process whose file descriptors include it.
func socketOwner(caller, tapAddr string, pids []int) (int, error) {
	_, cport, err := net.SplitHostPort(caller)
	if err != nil {
		return 0, err
	}
	_, tport, err := net.SplitHostPort(tapAddr)
	if err != nil {
		return 0, err
	}
	hexPort := func(p string) string {
		n, _ := strconv.Atoi(p)
		return fmt.Sprintf("%04X", n)
	}
	local, remote := "0100007F:"+hexPort(cport), "0100007F:"+hexPort(tport)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	inode := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && fs[1] == local && fs[2] == remote {
			inode = fs[9]
			break
		}
	}
	if inode == "" || inode == "0" {
		return 0, fmt.Errorf("no socket %s -> %s in /proc/net/tcp", caller, tapAddr)
	}
	want := "socket:[" + inode + "]"
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == want {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("socket %s (inode %s) belongs to none of %v", caller, inode, pids)
}
