package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/idemgate/idemgate/testenv"
)

// metric reads one series from serve's /metrics, written as the
// exposition writes it (`name` or `name{label="v",...}`, labels in name
// order): its value, 0 when it has no sample yet, an error when /metrics
// does not answer.
func (s *stack) metric(series string) (float64, error) {
	r := s.do("GET", "/metrics", "", "", "", "")
	if r.Status != 200 {
		return 0, fmt.Errorf("GET /metrics: %d %s", r.Status, r.Body)
	}
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, sc.Err()
}

// janitorPass waits until the janitor has made a whole pass that began
// after the call: a pass deletes expired keys, then dedup records past
// the window, so two dedup records of long ago, written one after the
// other, each deleted before the next is written, prove it.
func (s *stack) janitorPass(within time.Duration) {
	s.t.Helper()
	for i := range 2 {
		id := "janitor-sentinel-" + testenv.Random(4)
		if _, err := s.db.Pool.Exec(context.Background(),
			`INSERT INTO processed_events (projector, event_id, processed_at) VALUES ('test', $1, now() - INTERVAL '3650 days')`, id); err != nil {
			s.t.Fatal(err)
		}
		testenv.Eventually(s.t, within, fmt.Sprintf("janitor pass %d of 2", i+1), func() error {
			n := s.countNow(`SELECT count(*) FROM processed_events WHERE event_id = $1`, id)
			return testenv.Check(n == 0, "the dedup record %s is still there", id)
		})
	}
}

// expired waits until the claim of key is past its retention by the
// database's clock, the one the server uses.
func (s *stack) expired(key string, within time.Duration) {
	s.t.Helper()
	testenv.Eventually(s.t, within, "the key "+key+" past its retention", func() error {
		n := s.countNow(`SELECT count(*) FROM idempotency_claims WHERE idem_key = $1 AND expires_at <= now()`, key)
		return testenv.Check(n == 1, "not yet")
	})
}
