package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/testenv"
)

// The gateway in front of a service that honours Idempotency-Key, through
// each way an upstream fails. In every case the command has exactly one
// effect at the upstream, every attempt carried the same key (the
// operation id), and retries replay the upstream's answer byte for byte.

// gatewayCommand posts an order and returns the operation's Location.
func gatewayCommand(t *testing.T, s *stack, key, c, nonce string) string {
	t.Helper()
	r := s.postWith("/v1/orders", "key-a", []string{key}, orderBody(c, nonce))
	mustPending(t, "order", r, false)
	return r.Header.Get("Location")
}

// mustOneEffect checks the upstream applied nonce's command once, under
// one key, the operation id, and that retries replay its answer.
func mustOneEffect(t *testing.T, s *stack, u *testUpstream, key, c, nonce, loc string, wantStatus int) {
	t.Helper()
	rec := s.outcomeOf("key-a", loc)
	mustEqual(t, "recorded status", rec.Status, wantStatus)
	effects, keys, answer := u.effectsOf(nonce)
	mustEqual(t, "effects at the upstream", effects, 1)
	if !oneKey(keys) || "/v1/operations/"+keys[0] != loc {
		t.Fatalf("attempts carried keys %v; want the operation id of %s on each", keys, loc)
	}
	if !bytes.Equal(rec.Body, answer) {
		t.Fatalf("recorded %s, the upstream answered %s", rec.Body, answer)
	}
	for _, k := range []string{key, `"` + key + `"`} {
		r := s.postWith("/v1/orders", "key-a", []string{k}, orderBody(c, nonce))
		mustReplay(t, "replay", r, rec, "application/json")
		mustEqual(t, "replay Location", r.Header.Get("Location"), "/orders/"+keys[0])
	}
	mustEqual(t, "effects after the replays", func() int { n, _, _ := u.effectsOf(nonce); return n }(), 1)
}

func TestGatewayUpstreamFailures(t *testing.T) {
	u := startUpstream(t)
	// A call budget of 5 observed failures and no span of time, so that
	// a command whose upstream always fails is given up in seconds.
	s := startStack(t, "IDEMGATE_ROUTES", u.routesFile(t), "IDEMGATE_SWEEP_INTERVAL", "200ms", "IDEMGATE_UPSTREAM_BACKOFF", "250ms",
		"IDEMGATE_CALL_RETRY_FOR", "1ms")
	for _, c := range []struct {
		name, kase string
		status     int
		minCalls   int
	}{
		{"ConnectionDroppedAfterTheEffect", "drop", 201, 2},
		{"Two500sThen201", "500-twice", 201, 3},
		{"SlowerThanTheTimeoutOnce", "slow", 201, 2},
		{"Answer422IsStoredAndReplayed", "422", 422, 1},
		{"Answer503WithRetryAfter", "503-retry-after", 201, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := s.on(t)
			nonce, key := testenv.Random(6), "gw-"+c.name
			loc := gatewayCommand(t, s, key, c.kase, nonce)
			mustOneEffect(t, s, u, key, c.kase, nonce, loc, c.status)
			if _, keys, _ := u.effectsOf(nonce); len(keys) < c.minCalls {
				t.Fatalf("%d calls, want at least %d", len(keys), c.minCalls)
			}
			if c.kase == "503-retry-after" {
				times := u.attemptTimes(nonce)
				if gap := times[1].Sub(times[0]); gap < 950*time.Millisecond {
					t.Fatalf("second attempt %v after the first; the upstream asked for Retry-After: 1", gap)
				}
			}
			var view struct {
				Upstream struct{ Attempts int } `json:"upstream"`
			}
			if err := json.Unmarshal(s.do("GET", loc, "key-a", "", "", "").Body, &view); err != nil || view.Upstream.Attempts < c.minCalls {
				t.Fatalf("operation view shows %d attempts (%v), want at least %d", view.Upstream.Attempts, err, c.minCalls)
			}
		})
	}
	t.Run("OperationViewsMatchTheServedDocument", func(t *testing.T) { operationViewsMatchTheDocument(t, s.on(t)) })
	t.Run("DownForAWhileThenBack", func(t *testing.T) {
		s := s.on(t)
		u.down()
		nonce, key := testenv.Random(6), "gw-down"
		loc := gatewayCommand(t, s, key, "ok", nonce)
		testenv.Eventually(t, 30*time.Second, "two attempts refused while the upstream is down", func() error {
			var view struct {
				Upstream struct{ Attempts int } `json:"upstream"`
			}
			if err := json.Unmarshal(s.do("GET", loc, "key-a", "", "", "").Body, &view); err != nil {
				return err
			}
			return testenv.Check(view.Upstream.Attempts >= 2, "%d attempts", view.Upstream.Attempts)
		})
		u.up()
		mustOneEffect(t, s, u, key, "ok", nonce, loc, 201)
	})
	t.Run("PathParameterReachesTheUpstream", func(t *testing.T) {
		s := s.on(t)
		nonce := testenv.Random(6)
		r := s.postWith("/v1/orders/ord-7/cancel", "key-a", []string{"gw-cancel"}, orderBody("ok", nonce))
		mustPending(t, "cancel", r, false)
		mustEqual(t, "recorded", s.outcomeOf("key-a", r.Header.Get("Location")).Status, 201)
		mustProblem(t, "same key, other order", s.postWith("/v1/orders/ord-8/cancel", "key-a", []string{"gw-cancel"}, orderBody("ok", nonce)),
			409, "/idempotency-key-reused")
	})
	t.Run("DifferentBodyConflicts", func(t *testing.T) {
		s := s.on(t)
		nonce := testenv.Random(6)
		loc := gatewayCommand(t, s, "gw-409", "ok", nonce)
		s.outcomeOf("key-a", loc)
		mustProblem(t, "other body", s.postWith("/v1/orders", "key-a", []string{"gw-409"}, orderBody("ok", nonce+"x")), 409, "/idempotency-key-reused")
		mustEqual(t, "effects", func() int { n, _, _ := u.effectsOf(nonce + "x"); return n }(), 0)
	})
	t.Run("PreferWaitAnswersTheUpstreamsAnswer", func(t *testing.T) {
		s := s.on(t)
		nonce := testenv.Random(6)
		r := s.postWith("/v1/orders", "key-a", []string{"gw-wait"}, orderBody("ok", nonce), "Prefer", "wait=10")
		mustEqual(t, "status", r.Status, 201)
		mustEqual(t, "Preference-Applied", r.Header.Get("Preference-Applied"), "wait=10")
		_, _, answer := u.effectsOf(nonce)
		mustEqual(t, "body", string(r.Body), string(answer))
	})
	t.Run("SameKeyStorm64", func(t *testing.T) {
		s := s.on(t)
		nonce := testenv.Random(6)
		var wg sync.WaitGroup
		locs := make(chan string, 64)
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := rawPost(s.base, "/v1/orders", "key-a", "gw-storm", orderBody("ok", nonce))
				if err != nil || (r.Status != 202 && r.Status != 201) {
					t.Errorf("storm answer %d %v", r.Status, err)
					return
				}
				if r.Status == 202 {
					locs <- r.Header.Get("Location")
				}
			}()
		}
		wg.Wait()
		close(locs)
		var loc string
		for l := range locs {
			if loc != "" && l != loc {
				t.Fatalf("two operations for one key: %s and %s", loc, l)
			}
			loc = l
		}
		mustEqual(t, "claims of the key", s.countNow(`SELECT count(*) FROM idempotency_claims WHERE idem_key = 'gw-storm'`), 1)
		mustOneEffect(t, s, u, "gw-storm", "ok", nonce, loc, 201)
	})
	t.Run("ExhaustedIs502ThenRedriven", func(t *testing.T) {
		s := s.on(t)
		nonce := testenv.Random(6)
		loc := gatewayCommand(t, s, "gw-exhaust", "always-500", nonce)
		rec := s.outcomeOf("key-a", loc)
		mustEqual(t, "recorded", rec.Status, 502)
		if !strings.Contains(string(rec.Body), "/upstream-failed") {
			t.Fatalf("recorded %s", rec.Body)
		}
		_, keys, _ := u.effectsOf(nonce)
		mustEqual(t, "calls (IDEMGATE_CALL_ATTEMPTS)", len(keys), 5)
		p := mustProblem(t, "replay", s.postWith("/v1/orders", "key-a", []string{"gw-exhaust"}, orderBody("always-500", nonce)), 502, "/upstream-failed")
		if !strings.Contains(p.Detail, "failed on all 5 attempts") || !strings.Contains(p.Detail, "answered 500") {
			t.Fatalf("detail %q: want the number of attempts and the last error", p.Detail)
		}
		u.heal(nonce)
		var out strings.Builder
		if err := run(t.Context(), []string{"redrive", strings.TrimPrefix(loc, "/v1/operations/")}, func(k string) string { return s.vars[k] }, &out, &out); err != nil {
			t.Fatalf("redrive: %v", err)
		}
		testenv.Eventually(t, 30*time.Second, "the redriven command completed", func() error {
			r := s.do("GET", loc, "key-a", "", "", "")
			return testenv.Check(bytes.Contains(r.Body, []byte(`"status":201`)), "operation %s", r.Body)
		})
		mustOneEffect(t, s, u, "gw-exhaust", "always-500", nonce, loc, 201)
	})
	t.Run("AnswerTooLargeIsAppliedNotFailed", func(t *testing.T) {
		// The upstream applied the order and answered 201 with a body over
		// 1 MiB: the stored answer says so, keeps the 201 and Location, and
		// is neither dead-lettered nor offered for redrive.
		s := s.on(t)
		nonce := testenv.Random(6)
		loc := gatewayCommand(t, s, "gw-big", "big", nonce)
		rec := s.outcomeOf("key-a", loc)
		effects, keys, _ := u.effectsOf(nonce)
		mustEqual(t, "recorded status", rec.Status, 201)
		mustEqual(t, "effects", effects, 1)
		var p problemDoc
		if err := json.Unmarshal(rec.Body, &p); err != nil || !strings.HasSuffix(p.Type, "/upstream-answer-not-kept") ||
			!strings.Contains(p.Detail, "applied the command and answered 201") {
			t.Fatalf("recorded %s (%v); want a problem saying the command was applied and its body not kept", rec.Body, err)
		}
		r := s.postWith("/v1/orders", "key-a", []string{"gw-big"}, orderBody("big", nonce))
		mustEqual(t, "replay status", r.Status, 201)
		mustEqual(t, "replay Location", r.Header.Get("Location"), "/orders/"+keys[0])
		var out strings.Builder
		getenv := func(k string) string { return s.vars[k] }
		if err := run(t.Context(), []string{"list", "--state", "dead_lettered"}, getenv, &out, &out); err != nil {
			t.Fatal(err)
		}
		id := strings.TrimPrefix(loc, "/v1/operations/")
		if strings.Contains(out.String(), id) {
			t.Fatalf("list --state dead_lettered shows the applied command:\n%s", out.String())
		}
		if err := run(t.Context(), []string{"redrive", id}, getenv, &out, &out); err == nil {
			t.Fatal("redrive of an applied command was accepted")
		}
	})
	t.Run("OtherPartitionsFlowWhileOneRetries", func(t *testing.T) {
		s := s.on(t)
		stuck := testenv.Random(6)
		stuckLoc := gatewayCommand(t, s, "gw-stuck", "always-500", stuck)
		stuckPart := partitionOf(s, "orders.create", "gw-stuck")
		var locs []string
		for i := 0; len(locs) < 4; i++ {
			key := fmt.Sprintf("flow-%d", i)
			if partitionOf(s, "payments.create", key) == stuckPart {
				continue
			}
			locs = append(locs, s.postPayment("key-a", key, payment).Header.Get("Location"))
		}
		for _, loc := range locs {
			mustEqual(t, "payment", s.outcomeOf("key-a", loc).Status, 201)
		}
		if r := s.do("GET", stuckLoc, "key-a", "", "", ""); !bytes.Contains(r.Body, []byte(`"status":"pending"`)) {
			t.Fatalf("the retried command finished before the others (%s): the test proved nothing", r.Body)
		}
		mustEqual(t, "stuck at last", s.outcomeOf("key-a", stuckLoc).Status, 502)
	})
}

// partitionOf is the commands-topic partition of a key, as the emitter's
// producer chooses it.
func partitionOf(s *stack, operation, key string) int32 {
	p := kgo.StickyKeyPartitioner(nil).ForTopic(s.topics.Commands)
	return int32(p.Partition(&kgo.Record{Key: events.IdentityKey("tenant-a", operation, key)}, 3))
}

// TestGatewayProjectorKilledAfterTheCall kills the projector with -9 at
// projector.after-upstream-call: the upstream applied the command and
// answered, the answer is not recorded. The next projector calls again
// under the same Idempotency-Key and records the replayed answer: one
// effect.
func TestGatewayProjectorKilledAfterTheCall(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs a projector as a child process")
	}
	u := startUpstream(t)
	routes := u.routesFile(t)
	s := startRoles(t, []string{"serve", "relay"}, "IDEMGATE_ROUTES", routes)
	nonce := testenv.Random(6)
	loc := gatewayCommand(t, s, "gw-kill", "ok", nonce)

	child := startSelf(t, "project", s.Environ("IDEMGATE_FAULTS", "projector.after-upstream-call=1"), "project")
	select {
	case <-child.Done():
		if child.State().ExitCode() != -1 || len(child.Log.Matching(regexp.MustCompile(`dying at projector.after-upstream-call`), time.Time{})) == 0 {
			t.Fatalf("the projector ended with %v, not at the fault point", child.State())
		}
	case <-time.After(60 * time.Second): // a liveness bound: the fault point is the first call's answer
		t.Fatal("the projector did not reach the fault point within 60s")
	}
	effects, keys, _ := u.effectsOf(nonce)
	mustEqual(t, "effects before the restart", effects, 1)
	mustEqual(t, "calls before the restart", len(keys), 1)
	if r := s.do("GET", loc, "key-a", "", "", ""); !bytes.Contains(r.Body, []byte(`"attempts":1`)) {
		t.Fatalf("the recovery point is not visible: %s", r.Body)
	}

	s.startRole("project")
	mustOneEffect(t, s, u, "gw-kill", "ok", nonce, loc, 201)
	_, keys, _ = u.effectsOf(nonce)
	if len(keys) < 2 {
		t.Fatalf("%d calls; the restarted projector must have called again", len(keys))
	}
}
