package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
)

// callSteps drives a call's recovery point through steps and checks the
// verdict of each: "begin" (an attempt starts; the next begin with no end
// in between means the process died during it), "fail" (an observed
// failure), "end" (nothing was sent: no budget spent).
type callStep struct {
	do   string
	want store.Verdict
}

func runCall(t *testing.T, st *store.Store, budget store.CallBudget, steps []callStep) (store.Attempt, string) {
	t.Helper()
	ctx := context.Background()
	cmd := claim(t, st, "call-"+t.Name(), time.Hour)
	var a store.Attempt
	var err error
	for i, s := range steps {
		switch s.do {
		case "begin":
			a, err = st.BeginAttempt(ctx, "test", cmd, budget)
		case "fail":
			a, err = st.NoteFailure(ctx, cmd.OperationID, fmt.Sprintf("upstream answered 503 (failure %d)", i), budget)
		case "end":
			err = st.EndAttempt(ctx, cmd.OperationID, "the command is not a gateway body")
			a.Verdict = s.want
		}
		if err != nil {
			t.Fatalf("step %d (%s): %v", i, s.do, err)
		}
		if a.Verdict != s.want {
			t.Fatalf("step %d (%s): verdict %d (%+v), want %d", i, s.do, a.Verdict, a, s.want)
		}
	}
	return a, cmd.OperationID
}

// TestCallVerdicts: only observed failures spend the failure budget, which
// is a count and a span of time; attempts cut short by a crash are
// unfinished and spend a budget of their own, counted in a row; a 502 is
// allowed only when every attempt failed in an observed way.
func TestCallVerdicts(t *testing.T) {
	const (
		now     = store.CallNow
		retry   = store.CallRetry
		failed  = store.CallFailed
		unknown = store.CallOutcomeUnknown
	)
	tight := store.CallBudget{Failures: 2, For: time.Nanosecond, MaxUnfinished: 3}
	t.Run("CrashesSpendNoFailures", func(t *testing.T) {
		// Two crashes, then two observed failures: the budget of two
		// failures is spent only by the failures, and since two attempts
		// never ended, nothing says the upstream failed.
		a, _ := runCall(t, store.New(newDB(t), 0), tight, []callStep{
			{"begin", now}, {"begin", now}, {"begin", now}, {"fail", retry}, {"begin", now}, {"fail", unknown}})
		if a.Failures != 2 || a.Unfinished != 2 || a.N != 4 {
			t.Fatalf("%+v: want 4 attempts, 2 failures, 2 unfinished", a)
		}
	})
	t.Run("ObservedFailuresOnlyMayFail", func(t *testing.T) {
		a, _ := runCall(t, store.New(newDB(t), 0), tight, []callStep{{"begin", now}, {"fail", retry}, {"begin", now}, {"fail", failed}})
		if a.Failures != 2 || a.Unfinished != 0 || !strings.Contains(a.LastError, "503") {
			t.Fatalf("%+v: want 2 failures, none unfinished, the last error", a)
		}
	})
	t.Run("UnfinishedInARowIsQuarantined", func(t *testing.T) {
		st := store.New(newDB(t), 0)
		// A failure ends a run of unfinished attempts: 2 + 2 unfinished
		// never reach 3 in a row; the third in a row does.
		a, id := runCall(t, st, store.CallBudget{Failures: 100, For: time.Hour, MaxUnfinished: 3}, []callStep{
			{"begin", now}, {"begin", now}, {"begin", now}, {"fail", retry},
			{"begin", now}, {"begin", now}, {"begin", now}, {"begin", unknown}, {"begin", unknown}})
		if a.Unfinished != 5 || a.Streak != 3 || a.Failures != 1 || !strings.Contains(a.LastError, "attempt 6 ended without an outcome") {
			t.Fatalf("%+v: want 5 unfinished, 3 in a row, 1 failure", a)
		}
		v, found, err := st.KeyByOperation(context.Background(), id)
		if err != nil || !found || v.State != idemgate.ClaimOutcomeUnknown {
			t.Fatalf("key view %+v (found %v, %v): want outcome_unknown", v, found, err)
		}
		c, found, err := st.Command(context.Background(), v.Tenant, id)
		if err != nil || !found || c.State != idemgate.ClaimOutcomeUnknown {
			t.Fatalf("command view %+v (found %v, %v): want outcome_unknown", c, found, err)
		}
		n, _, err := st.OutcomeUnknown(context.Background())
		if err != nil || n != 1 {
			t.Fatalf("outcome unknown count %d, %v; want 1", n, err)
		}
		listed, err := st.Keys(context.Background(), store.KeyFilter{State: idemgate.ClaimOutcomeUnknown, Limit: 10})
		if err != nil || len(listed) != 1 || listed[0].OperationID != id {
			t.Fatalf("listed %v, %v; want the quarantined command", listed, err)
		}
	})
	t.Run("NothingSentSpendsNothing", func(t *testing.T) {
		a, _ := runCall(t, store.New(newDB(t), 0), tight, []callStep{
			{"begin", now}, {"end", now}, {"begin", now}, {"end", now}, {"begin", now}, {"end", now}, {"begin", now}, {"fail", retry}})
		if a.Unfinished != 0 || a.Failures != 1 {
			t.Fatalf("%+v: want nothing unfinished and 1 failure", a)
		}
	})
	t.Run("TheBudgetIsASpanOfTime", func(t *testing.T) {
		st := store.New(newDB(t), 0)
		budget := store.CallBudget{Failures: 1, For: 300 * time.Millisecond, MaxUnfinished: 3}
		start := time.Now()
		steps := []callStep{{"begin", now}, {"fail", retry}}
		a, _ := runCall(t, st, budget, steps)
		for a.Verdict == retry {
			// The database's clock measures the span; poll it. The
			// pause is the pace of the failing attempts, not a wait.
			time.Sleep(50 * time.Millisecond)
			cmd := claim(t, st, "call-"+t.Name(), time.Hour) // the same key: the same command
			b, err := st.BeginAttempt(context.Background(), "test", cmd, budget)
			if err != nil || b.Verdict != now && b.Verdict != failed {
				t.Fatalf("begin: %+v, %v", b, err)
			}
			if b.Verdict == failed { // the span ran out since the last failure
				a = b
				break
			}
			if a, err = st.NoteFailure(context.Background(), cmd.OperationID, "503", budget); err != nil {
				t.Fatal(err)
			}
		}
		if a.Verdict != failed || time.Since(start) < 300*time.Millisecond || a.FailingFor < 300*time.Millisecond || a.Failures < 2 {
			t.Fatalf("%+v after %v: want failed, after 300ms or more of failures", a, time.Since(start))
		}
	})
	t.Run("RedriveResolvesOutcomeUnknown", func(t *testing.T) {
		db := newDB(t)
		st := store.New(db, 0)
		_, id := runCall(t, st, tight, []callStep{{"begin", now}, {"begin", now}, {"begin", now}, {"begin", unknown}})
		if err := st.Redrive(context.Background(), "test", id); err != nil {
			t.Fatalf("redrive: %v", err)
		}
		var pending, calls int
		if err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM command_pending WHERE operation_id = $1),
       (SELECT count(*) FROM call_attempts WHERE operation_id = $1)`, id).Scan(&pending, &calls); err != nil {
			t.Fatal(err)
		}
		if pending != 1 || calls != 0 {
			t.Fatalf("after redrive: %d pending rows, %d recovery points; want 1 and 0 (emitted again, a new budget)", pending, calls)
		}
		if err := st.Redrive(context.Background(), "test", id); !errors.Is(err, store.ErrNotDeadLettered) {
			t.Fatalf("a second redrive: %v; want ErrNotDeadLettered (it is pending again)", err)
		}
	})
}
