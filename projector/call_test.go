package projector

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
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
	p, err := New(Config{Store: store.New(db, 0), Registry: reg, Name: "test", MaxCallAttempts: 5,
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
