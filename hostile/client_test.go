package hostile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// payment is a valid payment body.
const payment = `{"amount":1000,"currency":"EUR","customer":"cus_h"}`

// postPayment sends POST /v1/payments as tenant-a with the key.
func (a *api) postPayment(idemKey, body string, hdr ...string) testenv.Reply {
	return testenv.Do("POST", a.Base+"/v1/payments", body, append([]string{"Authorization", "Bearer key-a",
		"Idempotency-Key", idemKey, "Content-Type", "application/json"}, hdr...)...)
}

// get sends GET path as tenant-a.
func (a *api) get(path string) testenv.Reply {
	return testenv.Do("GET", a.Base+path, "", "Authorization", "Bearer key-a")
}

// waitCompleted polls the operation at location until it has an outcome
// and returns the view.
func (a *api) waitCompleted(location string, within time.Duration) testenv.Reply {
	a.t.Helper()
	var r testenv.Reply
	testenv.Eventually(a.t, within, location+" completed", func() error {
		r = a.get(location)
		return testenv.Check(r.Err == nil && r.Status == 200 && bytes.Contains(r.Body, []byte(`"status":"completed"`)), "%v", r)
	})
	return r
}

// completed sends a payment under key, which must be accepted, and
// waits until it completes; it returns the operation's path and the
// payment's.
func (a *api) completed(key string) (opPath, paymentPath string) {
	a.t.Helper()
	r := a.postPayment(key, payment)
	if r.Status != 202 {
		a.t.Fatalf("POST %s: %v", key, r)
	}
	opPath = r.Header.Get("Location")
	done := a.waitCompleted(opPath, 60*time.Second)
	var view struct {
		Response struct {
			Body struct{ ID string } `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(done.Body, &view); err != nil || view.Response.Body.ID == "" {
		a.t.Fatalf("operation view %s: %v", done.Body, err)
	}
	return opPath, "/v1/payments/" + view.Response.Body.ID
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
	r := testenv.Do("GET", url, "", hdr...)
	if r.Err != nil || r.Status != 200 {
		t.Fatalf("scrape %s: %v", url, r)
	}
	var m metrics
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
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
