package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client is the HTTP client of tests that load a server with many
// callers: keep-alive, and a timeout far above every bound a test
// asserts.
var Client = &http.Client{
	Timeout:   40 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
}

// Reply is an HTTP answer read whole, or the error instead, and how long
// it took.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
	Took   time.Duration
	Err    error
}

func (r Reply) String() string {
	if r.Err != nil {
		return fmt.Sprintf("error after %v: %v", r.Took, r.Err)
	}
	return fmt.Sprintf("%d after %v: %s", r.Status, r.Took.Round(time.Millisecond), bytes.TrimSpace(r.Body))
}

// Do sends one request with Client and reads the answer whole; hdr holds
// header name/value pairs.
func Do(method, url, body string, hdr ...string) Reply {
	start := time.Now()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return Reply{Err: err}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := Client.Do(req)
	if err != nil {
		return Reply{Err: err, Took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: b, Took: time.Since(start), Err: err}
}
