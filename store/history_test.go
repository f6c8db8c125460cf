package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idemgate/idemgate/store"
)

// TestHistory: the console's timeline log of a command off its normal
// path, in order: an upstream attempt that failed (with its error), one
// whose process died (found by the next), the quarantine, the redrive,
// and the sweeper's re-emission with its region. The janitor deletes it
// with the claim.
func TestHistory(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	st := store.New(db, time.Hour).WithRegion("eu")
	budget := store.CallBudget{Failures: 5, For: time.Hour, MaxUnfinished: 1}
	cmd := claim(t, st, "k-history", time.Millisecond)
	steps := []func() error{
		func() error { _, err := st.BeginAttempt(ctx, "test", cmd, budget); return err },
		func() error {
			_, err := st.NoteFailure(ctx, cmd.OperationID, "upstream answered 503", budget)
			return err
		},
		func() error { _, err := st.BeginAttempt(ctx, "test", cmd, budget); return err },
		// No outcome for attempt 2: the next begin finds it unfinished and
		// quarantines the command (MaxUnfinished 1).
		func() error { _, err := st.BeginAttempt(ctx, "test", cmd, budget); return err },
		func() error { return st.Redrive(ctx, "test", cmd.OperationID) },
		func() error {
			cmds, _, err := st.ExpiredLeases(ctx, 10) // Redrive expired the lease
			if err == nil && len(cmds) != 1 {
				err = fmt.Errorf("the sweeper took %d commands, want the redriven one", len(cmds))
			}
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	h, err := st.History(ctx, cmd.OperationID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		got = append(got, fmt.Sprintf("%s/%d/%s/%s", e.Kind, e.Attempt, e.Region, e.Detail))
	}
	want := []string{
		"attempt/1/eu/",
		"attempt_failed/1/eu/upstream answered 503",
		"attempt/2/eu/",
		"attempt_unfinished/2/eu/attempt 2 ended without an outcome: the process calling died during it",
		"quarantined/2/eu/attempt 2 ended without an outcome: the process calling died during it",
		"redriven/0/eu/outcome unknown",
		"reemitted/0/eu/",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Completed and past its retention: the janitor deletes its history.
	complete(t, st, cmd)
	if _, err := db.Pool.Exec(ctx, `UPDATE idempotency_claims SET expires_at = now() - INTERVAL '1 second' WHERE operation_id = $1`,
		cmd.OperationID); err != nil {
		t.Fatal(err)
	}
	if n, err := st.DeleteExpired(ctx, 10); err != nil || n != 1 {
		t.Fatalf("janitor deleted %d claims (%v), want 1", n, err)
	}
	if h, err := st.History(ctx, cmd.OperationID); err != nil || len(h) != 0 {
		t.Fatalf("history after the janitor: %d entries (%v), want none", len(h), err)
	}
}
