package main

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// body is a valid payments.create request; every request sends the same.
const body = `{"amount":1000,"currency":"EUR","customer":"cus_bench"}`

// outcome is one request's answer. Status 0 is a transport error.
type outcome struct {
	Status   int
	Replayed bool
	Latency  time.Duration
	Delay    time.Duration // open loop: from the request's slot to its send
}

// poster sends POST /v1/payments requests on a pool of kept-alive
// connections.
type poster struct {
	client *http.Client
	url    string
	auth   string
}

func newPoster(c Config) *poster {
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: loopback traffic only
		MaxIdleConns:        c.Conns,
		MaxIdleConnsPerHost: c.Conns,
		MaxConnsPerHost:     c.Conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &poster{
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		url:    strings.TrimRight(c.URL, "/") + "/v1/payments",
		auth:   "Bearer " + c.APIKey,
	}
}

// post sends one request with key and reads the whole answer.
func (p *poster) post(ctx context.Context, key string) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, strings.NewReader(body))
	if err != nil {
		return outcome{}
	}
	req.Header.Set("Authorization", p.auth)
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return outcome{}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return outcome{}
	}
	return outcome{Status: resp.StatusCode, Replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
}

func key(prefix string, i int64) string { return prefix + "-" + strconv.FormatInt(i, 10) }

// closedLoop runs conns workers, each sending its next request as soon as
// the previous one is answered, until the duration is over or (requests >
// 0) that many requests were sent. pick chooses each request's key.
func closedLoop(ctx context.Context, p *poster, conns int, d time.Duration, requests int, pick func(i int64) string) []outcome {
	var next atomic.Int64
	deadline := time.Now().Add(d)
	if requests > 0 {
		deadline = time.Now().Add(24 * time.Hour)
	}
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(30*time.Second))
	defer cancel()
	per := make([][]outcome, conns)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if requests > 0 && i >= int64(requests) {
					return
				}
				start := time.Now()
				o := p.post(ctx, pick(i))
				o.Latency = time.Since(start)
				per[w] = append(per[w], o)
			}
		})
	}
	wg.Wait()
	return flatten(per)
}

// openLoop sends rate requests per second for d, on a fixed schedule: a
// request's latency counts from its slot in the schedule, not from when a
// free connection let it go, so a stalled server cannot hide the requests
// it delayed (coordinated omission).
func openLoop(ctx context.Context, p *poster, conns int, rate float64, d time.Duration, pick func(i int64) string) []outcome {
	n := int64(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(20 * time.Millisecond)
	slot := func(i int64) time.Time { return start.Add(time.Duration(i) * interval) }
	jobs := make(chan int64, n)
	per := make([][]outcome, conns)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			for i := range jobs {
				at := slot(i)
				sent := time.Now()
				o := p.post(ctx, pick(i))
				o.Latency = time.Since(at)
				o.Delay = sent.Sub(at)
				per[w] = append(per[w], o)
			}
		})
	}
	for i := range n {
		if wait := time.Until(slot(i)); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return flatten(per)
}

func flatten(per [][]outcome) []outcome {
	var out []outcome
	for _, o := range per {
		out = append(out, o...)
	}
	return out
}

// randomKey picks one of n existing keys at random.
func randomKey(prefix string, n int) func(int64) string {
	return func(int64) string { return key(prefix, rand.Int64N(int64(n))) }
}

// sequentialKey gives every request a key of its own.
func sequentialKey(prefix string) func(int64) string {
	return func(i int64) string { return key(prefix, i) }
}
