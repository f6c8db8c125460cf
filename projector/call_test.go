package projector

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// flaky is a CallApplier that fails its first attempts as retryable, then
// answers 201, noting each attempt's number and operation id.
type flaky struct {
	mu       sync.Mutex
	failures int
	attempts []int
	ids      map[string]bool
}

func (f *flaky) Call(_ context.Context, cmd idemgate.Command, attempt int) (idemgate.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, attempt)
	f.ids[cmd.OperationID] = true
	if len(f.attempts) <= f.failures {
		return idemgate.Response{}, &idemgate.RetryableError{Err: errors.New("503 from the upstream")}
	}
	return idemgate.Response{Status: 201, ContentType: "application/json", Body: []byte(`{"called":true}`)}, nil
}

// TestCallRetriesThenRecords: a call applier failing twice with a
// retryable error is called again, with attempt numbers 1, 2, 3 and the
// same operation id, and its third answer is recorded once. The projector
// is built with no logger, as a library user may: the retries' warnings
// go to the default logger.
func TestCallRetriesThenRecords(t *testing.T) {
	ctx := context.Background()
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	up := &flaky{failures: 2, ids: map[string]bool{}}
	reg := idemgate.MustRegistry(idemgate.Module{Name: "calls", Operations: []idemgate.Operation{{
		Name: "calls.make", Path: "/v1/calls",
		Validate: func(b []byte) (json.RawMessage, error) { return b, nil },
		Call:     up,
	}}})
	p, err := New(Config{Store: store.New(db, 0), Registry: reg, Name: "test", CallBudget: store.CallBudget{Failures: 5, For: time.Nanosecond},
		CallBackoff: time.Millisecond, MaxCallBackoff: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rec := claimAndRecord(t, db, "calls.make")
	if err := p.Handle(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := p.Handle(ctx, rec); err != nil { // redelivered once recorded: no new call
		t.Fatal(err)
	}
	if len(up.attempts) != 3 || up.attempts[0] != 1 || up.attempts[1] != 2 || up.attempts[2] != 3 || len(up.ids) != 1 {
		t.Fatalf("attempts %v for %d operation ids; want [1 2 3] for one", up.attempts, len(up.ids))
	}
	var status int
	var body string
	if err := db.Pool.QueryRow(ctx, `SELECT status, convert_from(body, 'UTF8') FROM outbox`).Scan(&status, &body); err != nil {
		t.Fatal(err)
	}
	if status != 201 || body != `{"called":true}` {
		t.Fatalf("recorded %d %s, want 201 {\"called\":true}", status, body)
	}
}

// callProjector is a projector whose one operation, calls.make, is
// applied by up, with budget and millisecond backoffs.
func callProjector(t *testing.T, up idemgate.CallApplier, budget store.CallBudget) (*Projector, *sqldb.DB) {
	t.Helper()
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	reg := idemgate.MustRegistry(idemgate.Module{Name: "calls", Operations: []idemgate.Operation{{
		Name: "calls.make", Path: "/v1/calls",
		Validate: func(b []byte) (json.RawMessage, error) { return b, nil },
		Call:     up,
	}}})
	p, err := New(Config{Store: store.New(db, 0), Registry: reg, Name: "test", CallBudget: budget,
		CallBackoff: time.Millisecond, MaxCallBackoff: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p, db
}

// crash leaves what a projector killed during a call leaves: an attempt
// begun, never ended.
func crash(t *testing.T, p *Projector, rec *kgo.Record) idemgate.Command {
	t.Helper()
	cmd, err := decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.cfg.Store.BeginAttempt(context.Background(), p.cfg.Name, cmd, p.cfg.CallBudget)
	if err != nil || a.Verdict != store.CallNow {
		t.Fatalf("begin: %+v, %v", a, err)
	}
	return cmd
}

// TestCrashIsNotAFailure: three attempts cut short by crashes, then an
// answer. With a budget of one failure, the crashes spend none of it: the
// fourth attempt resumes under the same key and its answer is recorded.
// (Counting every attempt begun, as before, gave up at the second.)
func TestCrashIsNotAFailure(t *testing.T) {
	up := &flaky{ids: map[string]bool{}}
	p, db := callProjector(t, up, store.CallBudget{Failures: 1, For: time.Nanosecond, MaxUnfinished: 5})
	rec := claimAndRecord(t, db, "calls.make")
	for range 3 {
		crash(t, p, rec)
	}
	if err := p.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	var status, attempts, failures, unfinished int
	if err := db.Pool.QueryRow(context.Background(), `SELECT o.status, a.attempts, a.failures, a.unfinished
FROM outbox o JOIN call_attempts a USING (operation_id)`).Scan(&status, &attempts, &failures, &unfinished); err != nil {
		t.Fatal(err)
	}
	if status != 201 || attempts != 4 || failures != 0 || unfinished != 3 || len(up.attempts) != 1 || up.attempts[0] != 4 {
		t.Fatalf("recorded %d after %d attempts (%d failed, %d unfinished), calls %v; want 201 after 4 (0 failed, 3 unfinished), one call as attempt 4",
			status, attempts, failures, unfinished, up.attempts)
	}
}

// TestCrashLoopIsQuarantinedThenRedriven: a command whose attempts end
// unfinished MaxUnfinished times in a row is quarantined: not called
// again, nothing recorded, its event consumed (Handle returns nil, so
// the partition goes on), and a retry of its key sees it. A redrive gives
// it a new budget; the next delivery calls and records the answer.
func TestCrashLoopIsQuarantinedThenRedriven(t *testing.T) {
	up := &flaky{ids: map[string]bool{}}
	p, db := callProjector(t, up, store.CallBudget{Failures: 1, For: time.Nanosecond, MaxUnfinished: 3})
	ctx := context.Background()
	rec := claimAndRecord(t, db, "calls.make")
	var cmd idemgate.Command
	for range 3 {
		cmd = crash(t, p, rec)
	}
	for range 2 { // quarantined, and still so when redelivered
		if err := p.Handle(ctx, rec); err != nil {
			t.Fatalf("a quarantined command must not hold its partition: %v", err)
		}
	}
	if len(up.attempts) != 0 {
		t.Fatalf("calls %v; a quarantined command is not called", up.attempts)
	}
	st := p.cfg.Store
	v, found, err := st.Command(ctx, cmd.Tenant, cmd.OperationID)
	if err != nil || !found || v.Response != nil || v.State != idemgate.ClaimOutcomeUnknown || v.Calls.Unfinished != 3 {
		t.Fatalf("command %+v (%v, %v): want outcome unknown, nothing recorded, 3 unfinished", v, found, err)
	}
	claims, err := st.ClaimKeys(ctx, []idemgate.ClaimRequest{{Tenant: cmd.Tenant, Operation: cmd.Operation, Key: cmd.IdempotencyKey,
		Fingerprint: []byte{1}, Request: cmd.Request, Retention: time.Hour}})
	if err != nil || claims[0].Inserted || claims[0].State() != idemgate.ClaimOutcomeUnknown || claims[0].Response != nil {
		t.Fatalf("a retry's claim %+v, %v: want the existing claim, outcome unknown", claims, err)
	}
	if err := st.Redrive(ctx, "test", cmd.OperationID); err != nil {
		t.Fatal(err)
	}
	if err := p.Handle(ctx, rec); err != nil {
		t.Fatal(err)
	}
	var status int
	if err := db.Pool.QueryRow(ctx, `SELECT status FROM outbox`).Scan(&status); err != nil || status != 201 || len(up.attempts) != 1 {
		t.Fatalf("after redrive: recorded %d (%v), calls %v; want 201 after one call", status, err, up.attempts)
	}
}
