package hostile

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowConn is one attacker's connection and what became of it.
type slowConn struct {
	kind     string
	openedAt time.Time
	closedAt time.Time // when the server closed it (zero: never)
	answer   string    // the status line the server sent, if any
	err      error     // a dial error
}

// The attackers, who have network access and no API key (but the last
// kind, a client with a key that sends its body slowly).
const (
	idleConn     = "idle (sends nothing)"
	slowHeaders  = "slow headers (a byte a second)"
	slowBodyAnon = "slow 200-byte body, no API key"
	slowBodyBad  = "slow 1 MB body, unknown API key"
	slowBodyKey  = "slow body, valid API key"
)

// TestSlowClientsAreCutOff (finding 1): 2,000 connections that send
// nothing, send their headers a byte a second, or announce a 1 MB body
// and trickle it, while a legitimate client keeps posting and reading.
// The legitimate client is answered within 1 s throughout; the server
// closes every slow connection: when it refuses the request before its
// body (401), at once for a body too large to drain and within a second
// for a small one; after the 5 s header timeout for the others; after the
// 15 s read timeout for a slow body with a valid key.
func TestSlowClientsAreCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the idemgate binary")
	}
	s := newStack(t)
	a := s.serve()
	baseFDs := a.FDs()

	plan := []struct {
		kind string
		n    int
	}{{idleConn, 600}, {slowHeaders, 600}, {slowBodyAnon, 400}, {slowBodyBad, 400}, {slowBodyKey, 10}}
	var conns []*slowConn
	for _, p := range plan {
		for range p.n {
			conns = append(conns, &slowConn{kind: p.kind})
		}
	}
	// The server's file handles, sampled while the attack runs: the
	// kernel completes a connection before serve accepts it, so the peak
	// is seen a little after the last dial returns.
	held := 0
	for _, p := range plan {
		if p.kind != slowBodyAnon && p.kind != slowBodyBad {
			held += p.n // held by the server for 5 s or more
		}
	}
	peakFDs := 0
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			peakFDs = max(peakFDs, a.FDs())
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	start := time.Now()
	var wg sync.WaitGroup
	opened := make(chan struct{}, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			attack(a.Addr, c, opened)
		}()
	}
	for range conns {
		<-opened
	}
	allOpen := time.Since(start)

	// The legitimate client, while the slow connections are open (the
	// first are cut after 5 s).
	var lat []time.Duration
	var failures []string
	for i := 0; time.Since(start) < allOpen+3500*time.Millisecond; i++ {
		r := a.postPayment(fmt.Sprintf("legit-%d", i), payment)
		lat = append(lat, r.Took)
		if r.Err != nil || r.Status != 202 {
			failures = append(failures, "POST: "+r.String())
			continue
		}
		g := a.get(r.Header.Get("Location"))
		lat = append(lat, g.Took)
		if g.Err != nil || g.Status != 200 {
			failures = append(failures, "GET: "+g.String())
		}
		time.Sleep(50 * time.Millisecond) // the client's pace, not a wait
	}
	close(stopSampling)
	<-sampled
	wg.Wait()
	endFDs := a.FDs()

	for _, f := range failures {
		t.Errorf("legitimate client: %s", f)
	}
	if worst := percentile(lat, 100); worst > time.Second {
		t.Errorf("legitimate client: slowest answer %v, want < 1s", worst)
	}
	t.Logf("%d slow connections open within %v (serve's file handles: %d before, %d at peak, %d after)",
		len(conns), ms(allOpen), baseFDs, peakFDs, endFDs)
	t.Logf("legitimate client during the attack: %d requests, median %v, p99 %v, max %v",
		len(lat), ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 100)))
	if peakFDs < baseFDs+held {
		t.Errorf("serve held %d file handles at the peak, fewer than the %d it had before plus the %d connections it should hold for 5 s or more: they were not all accepted",
			peakFDs, baseFDs, held)
	}

	// Each kind is closed by the server, and when its timeout says.
	bounds := map[string][2]time.Duration{
		idleConn:     {4 * time.Second, 8 * time.Second},   // ReadHeaderTimeout 5s
		slowHeaders:  {4 * time.Second, 8 * time.Second},   // ReadHeaderTimeout 5s
		slowBodyAnon: {0, 2500 * time.Millisecond},         // 401 before the body; the rest may take 1s
		slowBodyBad:  {0, 2 * time.Second},                 // the same
		slowBodyKey:  {14 * time.Second, 19 * time.Second}, // ReadTimeout 15s
	}
	wantAnswer := map[string]string{slowBodyAnon: "HTTP/1.1 401", slowBodyBad: "HTTP/1.1 401"}
	for _, p := range plan {
		var held []time.Duration
		closed := 0
		answers := map[string]int{}
		for _, c := range conns {
			if c.kind != p.kind {
				continue
			}
			if c.err != nil {
				t.Errorf("%s: %v", c.kind, c.err)
				continue
			}
			answers[statusOf(c.answer)]++
			if c.closedAt.IsZero() {
				continue
			}
			closed++
			held = append(held, c.closedAt.Sub(c.openedAt))
		}
		b := bounds[p.kind]
		lo, hi := percentile(held, 0), percentile(held, 100)
		t.Logf("%-32s %4d connections, %4d closed by the server after %v to %v (median %v); answers %v",
			p.kind+":", p.n, closed, ms(lo), ms(hi), ms(percentile(held, 50)), answers)
		if closed != p.n {
			t.Errorf("%s: the server closed %d of %d connections", p.kind, closed, p.n)
		}
		if lo < b[0] || hi > b[1] {
			t.Errorf("%s: closed after %v to %v, want within [%v, %v]", p.kind, lo, hi, b[0], b[1])
		}
		if want := wantAnswer[p.kind]; want != "" && answers[want] != p.n {
			t.Errorf("%s: answers %v, want %d × %q", p.kind, answers, p.n, want)
		}
	}
}

// attack opens one slow connection, trickles its bytes a byte a second,
// and waits for the server to close it (up to 30 s).
func attack(addr string, c *slowConn, opened chan<- struct{}) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	c.openedAt = time.Now()
	opened <- struct{}{}
	if err != nil {
		c.err = err
		return
	}
	defer conn.Close()
	var head, trickle string
	// A body announced small enough for the server to drain it after its
	// answer (under 256 KB) is what the early Connection: close is for.
	const bodyHead = "POST /v1/payments HTTP/1.1\r\nHost: x\r\nIdempotency-Key: slow\r\nContent-Type: application/json\r\n"
	switch c.kind {
	case slowHeaders:
		trickle = "POST /v1/payments HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Slow: y\r\n", 10)
	case slowBodyAnon:
		head, trickle = bodyHead+"Content-Length: 200\r\n\r\n", strings.Repeat("9", 100)
	case slowBodyBad:
		head, trickle = bodyHead+"Content-Length: 1000000\r\nAuthorization: Bearer not-a-key\r\n\r\n", strings.Repeat("9", 100)
	case slowBodyKey:
		head, trickle = bodyHead+"Content-Length: 1000000\r\nAuthorization: Bearer key-a\r\n\r\n", strings.Repeat("9", 100)
	}
	if head != "" {
		if _, err := io.WriteString(conn, head); err != nil {
			c.closedAt = time.Now()
			return
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < len(trickle); i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			if _, err := conn.Write([]byte{trickle[i]}); err != nil {
				return
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				c.closedAt = time.Now() // EOF or reset: the server closed it
			}
			break
		}
	}
	c.answer = string(got)
}

// statusOf is the status line of a raw answer ("" when none).
func statusOf(raw string) string {
	line, _, _ := strings.Cut(raw, "\r\n")
	if len(line) > 12 {
		line = line[:12]
	}
	return line
}
