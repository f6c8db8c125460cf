package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/command"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/testenv"
)

// TestResultsTopicGetsEveryOutcome checks that each recorded outcome is
// published as a CloudEvent (by the projector, right after its commit)
// and its outbox row marked sent.
func TestResultsTopicGetsEveryOutcome(t *testing.T) {
	s := startStack(t)
	want := map[string]int{}
	for i, body := range []string{payment, `{"amount":2000000,"currency":"EUR","customer":"cus_9"}`} {
		r := s.postPayment("key-a", "res-"+string(rune('a'+i)), body)
		mustEqual(t, "status", r.Status, 202)
		op := s.waitCompleted("key-a", r.Header.Get("Location"))
		var v struct {
			OperationID string               `json:"operation_id"`
			Response    struct{ Status int } `json:"response"`
		}
		_ = json.Unmarshal(op.Body, &v)
		want[v.OperationID] = v.Response.Status
	}
	testenv.Eventually(t, 30*time.Second, "every outbox row sent", func() error {
		n := s.count(`SELECT count(*) FROM outbox WHERE sent_at IS NULL`)
		return testenv.Check(n == 0, "%d unsent", n)
	})
	got := map[string]int{}
	for _, rec := range s.topicRecords(s.topics.Results) {
		env, err := events.Decode(rec)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "ce_type", env.Type, events.TypeCommandCompleted)
		var c struct {
			OperationID string `json:"operation_id"`
			Status      int    `json:"status"`
		}
		if err := json.Unmarshal(env.Data, &c); err != nil {
			t.Fatal(err)
		}
		// Distinct from the command event's id (the operation id): the
		// CloudEvents pair (source, id) names one event.
		if !strings.HasPrefix(env.ID, c.OperationID+":completed:") {
			t.Fatalf("result event id %q, want %s:completed:<recorded at>", env.ID, c.OperationID)
		}
		got[c.OperationID] = c.Status
	}
	for id, status := range want {
		mustEqual(t, "result of "+id, got[id], status)
	}
}

// TestSweeperEmitsClaimsLeftAccepted stands for an API that died between
// its claim commit and the Kafka write: a claim left ACCEPTED past its
// lease is emitted by the sweeper and completes (I2).
func TestSweeperEmitsClaimsLeftAccepted(t *testing.T) {
	s := startStack(t, "IDEMGATE_SWEEP_INTERVAL", "100ms")
	op := uuid.NewString()
	s.insertClaim(op, "orphan-1", `{"amount":700,"currency":"EUR","customer":"cus_3"}`, `{"amount":700,"currency":"EUR","customer":"cus_3","description":null}`)
	s.waitCompleted("key-a", "/v1/operations/"+op)
	mustEqual(t, "payments of the orphan", s.count(`SELECT count(*) FROM payments WHERE operation_id = $1`, op), 1)
	r := s.postPayment("key-a", "orphan-1", `{"amount":700,"currency":"EUR","customer":"cus_3"}`)
	mustEqual(t, "replay", r.Status, 201)
}

// TestPoisonEventIsDeadLetteredAndRedriven feeds the projector a command
// it cannot apply: after bounded retries it goes to the dead-letter topic,
// the client gets a stored 500 /processing-failed, the partition keeps
// flowing, and `idemgate redrive` drives the command again.
func TestPoisonEventIsDeadLetteredAndRedriven(t *testing.T) {
	s := startStack(t, "IDEMGATE_MAX_ATTEMPTS", "2", "IDEMGATE_SWEEP_INTERVAL", "100ms", "IDEMGATE_LEASE", "1h")
	op := uuid.NewString()
	s.insertClaim(op, "poison-1", `{"amount":"not a number"}`, `{"amount":"not a number"}`)
	// The sweeper would emit it only after its lease; emit it now, and a
	// record that is not even a CloudEvent beside it.
	cl, err := kgo.NewClient(testenv.KafkaOptions(t, s.brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	env, _ := events.CommandAccepted(idemgate.Command{OperationID: op, Tenant: "tenant-a", Operation: "payments.create", IdempotencyKey: "poison-1",
		Request: json.RawMessage(`{"amount":"not a number"}`), AcceptedAt: time.Now()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx,
		env.Record(s.topics.Commands, events.IdentityKey("tenant-a", "payments.create", "poison-1")),
		&kgo.Record{Topic: s.topics.Commands, Key: []byte("garbage"), Value: []byte("\x00not an event")},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}

	done := s.waitCompleted("key-a", "/v1/operations/"+op)
	if !strings.Contains(string(done.Body), `"status":500`) || !strings.Contains(string(done.Body), "/processing-failed") {
		t.Fatalf("operation = %s; want a stored 500 processing-failed", done.Body)
	}
	r := s.postPayment("key-a", "poison-1", `{"amount":"not a number"}`)
	mustEqual(t, "schema still checked before the claim", r.Status, 422)

	// Both records reach the dead-letter topic; the partitions flow on.
	var dead []*kgo.Record
	testenv.Eventually(t, 30*time.Second, "both records on the dead-letter topic", func() error {
		dead = s.topicRecords(s.topics.DeadLetter)
		return testenv.Check(len(dead) >= 2, "%d dead letters", len(dead))
	})
	mustEqual(t, "dead letters", len(dead), 2)
	next := s.postPayment("key-a", "after-poison", payment)
	s.waitCompleted("key-a", next.Header.Get("Location"))

	// An operator fixes the stored request and drives the command again.
	if _, err := s.db.Pool.Exec(context.Background(), `UPDATE idempotency_claims SET request = $1 WHERE operation_id = $2`,
		[]byte(`{"amount":800,"currency":"EUR","customer":"cus_4","description":null}`), op); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	getenv := func(k string) string { return s.vars[k] }
	if err := run(context.Background(), []string{"redrive", op}, getenv, &out, &out); err != nil {
		t.Fatalf("redrive: %v", err)
	}
	if err := run(context.Background(), []string{"redrive", op}, getenv, &out, &out); err == nil {
		t.Fatal("a second redrive of a command no longer failed must be refused")
	}
	testenv.Eventually(t, 30*time.Second, "the redriven command applied", func() error {
		n := s.count(`SELECT count(*) FROM payments WHERE operation_id = $1`, op)
		return testenv.Check(n == 1, "%d payments of the operation", n)
	})
	final := s.do("GET", "/v1/operations/"+op, "key-a", "", "", "")
	if !strings.Contains(string(final.Body), `"status":201`) {
		t.Fatalf("after redrive: %s", final.Body)
	}
}

// insertClaim writes a claim for body (normalised as request) as the API
// would have just before dying.
func (s *stack) insertClaim(operationID, key, body, request string) {
	s.t.Helper()
	canonical, err := command.Canonicalize([]byte(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.db.Pool.Exec(context.Background(), `WITH ins AS (INSERT INTO idempotency_claims
(tenant_id, operation, idem_key, operation_id, fingerprint, target, request, lease_until, expires_at)
VALUES ('tenant-a', 'payments.create', $1, $2, $3, '', $4, now() - INTERVAL '1 second', now() + INTERVAL '1 hour')
RETURNING operation_id, lease_until)
INSERT INTO command_pending (operation_id, lease_until) SELECT operation_id, lease_until FROM ins`,
		key, operationID, command.Fingerprint("payments.create", "", canonical), []byte(request)); err != nil {
		s.t.Fatal(err)
	}
}
