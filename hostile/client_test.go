package hostile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// client is the legitimate clients' HTTP client: keep-alive, and a
// timeout far above every bound the tests assert.
var client = &http.Client{
	Timeout:   40 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
}

// reply is an HTTP answer read whole, or the error instead.
type reply struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
	err    error
}

func (r reply) String() string {
	if r.err != nil {
		return fmt.Sprintf("error after %v: %v", r.took, r.err)
	}
	return fmt.Sprintf("%d after %v: %s", r.status, r.took.Round(time.Millisecond), bytes.TrimSpace(r.body))
}

// do sends one request; hdr holds name/value pairs.
func do(method, url, body string, hdr ...string) reply {
	start := time.Now()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{err: err}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, took: time.Since(start), err: err}
}

// payment is a valid payment body.
const payment = `{"amount":1000,"currency":"EUR","customer":"cus_h"}`

// postPayment sends POST /v1/payments as tenant-a with the key.
func (a *api) postPayment(idemKey, body string, hdr ...string) reply {
	return do("POST", a.Base+"/v1/payments", body, append([]string{"Authorization", "Bearer key-a",
		"Idempotency-Key", idemKey, "Content-Type", "application/json"}, hdr...)...)
}

// get sends GET path as tenant-a.
func (a *api) get(path string) reply {
	return do("GET", a.Base+path, "", "Authorization", "Bearer key-a")
}

// waitCompleted polls the operation at location until it has an outcome
// and returns the view.
func (a *api) waitCompleted(location string, within time.Duration) reply {
	a.t.Helper()
	var r reply
	testenv.Eventually(a.t, within, location+" completed", func() error {
		r = a.get(location)
		return testenv.Check(r.err == nil && r.status == 200 && bytes.Contains(r.body, []byte(`"status":"completed"`)), "%v", r)
	})
	return r
}

// metrics is one scrape of a Prometheus text endpoint.
type metrics []string

// scrape reads url's metrics (with the bearer token when not empty).
func scrape(t *testing.T, url, token string) metrics {
	t.Helper()
	var hdr []string
	if token != "" {
		hdr = []string{"Authorization", "Bearer " + token}
	}
	r := do("GET", url, "", hdr...)
	if r.err != nil || r.status != 200 {
		t.Fatalf("scrape %s: %v", url, r)
	}
	var m metrics
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			m = append(m, line)
		}
	}
	return m
}

// sum adds the values of name's series whose labels include each of
// labels (`pool="api"`); found is false when there is none.
func (m metrics) sum(name string, labels ...string) (total float64, found bool) {
	for _, line := range m {
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, lbls, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(lbls, l)
		}
		if !all {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		total += v
		found = true
	}
	return total, found
}

// percentile returns the p-th percentile (0-100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
