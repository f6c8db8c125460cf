package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/command"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// BenchmarkClaimKeys measures the claim transaction on the real database,
// one claim per transaction against claims grouped into one transaction
// (the design's path to higher throughput). ns/op is per claim.
func BenchmarkClaimKeys(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := testenv.OpenDB(b, newDatabase(b))
			claims := store.New(db, 10*time.Second)
			body := []byte(`{"amount":1000,"currency":"EUR","customer":"c","description":null}`)
			fp := command.Fingerprint("payments.create", "", body)
			var n atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				reqs := make([]idemgate.ClaimRequest, 0, batch)
				flush := func() {
					if _, err := claims.ClaimKeys(context.Background(), reqs); err != nil {
						b.Error(err)
					}
					reqs = reqs[:0]
				}
				for pb.Next() {
					reqs = append(reqs, idemgate.ClaimRequest{Tenant: "t", Operation: "payments.create",
						Key: fmt.Sprintf("k%d", n.Add(1)), Fingerprint: fp, Request: body, Retention: time.Hour})
					if len(reqs) == batch {
						flush()
					}
				}
				if len(reqs) > 0 {
					flush()
				}
			})
		})
	}
}

// BenchmarkHTTP measures whole requests through serve (chi, auth,
// validation, fingerprint, claim, emit): new commands, and replays of a
// completed one.
func BenchmarkHTTP(b *testing.B) {
	s := startStack(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post := func(key string) int {
		req, _ := http.NewRequest("POST", s.base+"/v1/payments", strings.NewReader(payment))
		req.Header.Set("Authorization", "Bearer key-a")
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	b.Run("accept", func(b *testing.B) {
		var n atomic.Int64
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if st := post(fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), n.Add(1))); st != 202 {
					b.Errorf("status %d", st)
				}
			}
		})
	})
	b.Run("replay", func(b *testing.B) {
		key := fmt.Sprintf("replay-%d", time.Now().UnixNano())
		post(key)
		testenv.Eventually(b, 30*time.Second, "the replay of a completed command", func() error {
			st := post(key)
			return testenv.Check(st == 201, "status %d", st)
		})
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if st := post(key); st != 201 {
					b.Errorf("status %d", st)
				}
			}
		})
	})
}

// BenchmarkFingerprint measures canonicalisation and hashing of a body.
func BenchmarkFingerprint(b *testing.B) {
	body := []byte(`{ "description": "order 17", "customer":"cus_1", "currency": "EUR", "amount": 1.0e3 }`)
	for b.Loop() {
		c, err := command.Canonicalize(body)
		if err != nil {
			b.Fatal(err)
		}
		command.Fingerprint("payments.create", "", c)
	}
}
