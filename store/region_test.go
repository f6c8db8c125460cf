package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
)

// TestClaimRegions (issue 20): a claim records the region whose API
// accepted it, which emits it at once; a store without a region writes
// NULL (read as ""). When the claim's lease passes, the sweeper of
// another region that adopts it records itself as the emitter, leaving
// the accepting region as it was: adoption is visible on the row.
func TestClaimRegions(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	eu, us := store.New(db, time.Hour).WithRegion("eu"), store.New(db, time.Hour).WithRegion("us")
	regions := func(st *store.Store, opID string) (string, string) {
		t.Helper()
		v, found, err := st.Command(ctx, "tenant-a", opID)
		if err != nil || !found {
			t.Fatalf("command %s: found %v, %v", opID, found, err)
		}
		return v.AcceptedRegion, v.EmittedRegion
	}

	adopted, own := claim(t, eu, "k-adopted", time.Hour), claim(t, eu, "k-own", time.Hour)
	if a, e := regions(us, adopted.OperationID); a != "eu" || e != "eu" {
		t.Fatalf("claimed in eu: accepted_region %q, emitted_region %q, want eu, eu", a, e)
	}
	if a, e := regions(eu, claim(t, store.New(db, time.Hour), "k-noregion", time.Hour).OperationID); a != "" || e != "" {
		t.Fatalf("claimed without a region: accepted_region %q, emitted_region %q, want NULL", a, e)
	}

	// eu is lost before Kafka acknowledged the event: its lease passes and
	// us's sweeper takes it.
	if _, err := db.Pool.Exec(ctx, `UPDATE command_pending SET lease_until = now() - INTERVAL '1 second' WHERE operation_id = $1`,
		adopted.OperationID); err != nil {
		t.Fatal(err)
	}
	cmds, _, err := us.ExpiredLeases(ctx, 100)
	if err != nil || len(cmds) != 1 || cmds[0].OperationID != adopted.OperationID {
		t.Fatalf("us's sweeper took %+v (%v), want k-adopted alone", cmds, err)
	}
	if a, e := regions(eu, adopted.OperationID); a != "eu" || e != "us" {
		t.Fatalf("adopted by us: accepted_region %q, emitted_region %q, want eu, us", a, e)
	}
	if a, e := regions(eu, own.OperationID); a != "eu" || e != "eu" {
		t.Fatalf("the claim within its lease: accepted_region %q, emitted_region %q, want eu, eu (untouched)", a, e)
	}

	// A sweeper without a region (idemgate redrive's store, an old
	// process) leaves the emitter as it was rather than erasing it.
	if _, err := db.Pool.Exec(ctx, `UPDATE command_pending SET lease_until = now() - INTERVAL '1 second' WHERE operation_id = $1`,
		adopted.OperationID); err != nil {
		t.Fatal(err)
	}
	if cmds, _, err := store.New(db, time.Hour).ExpiredLeases(ctx, 100); err != nil || len(cmds) != 1 {
		t.Fatalf("taken %d (%v), want 1", len(cmds), err)
	}
	if a, e := regions(eu, adopted.OperationID); a != "eu" || e != "us" {
		t.Fatalf("re-emitted without a region: accepted_region %q, emitted_region %q, want eu, us", a, e)
	}
}

// TestAdoptionAfterAcknowledgement (issue 20): with adoption on, a
// command whose event eu's Kafka acknowledged keeps its pending row,
// marked acknowledged by eu (the claim reads published), so that when eu
// is lost before its projector applied it, us's sweeper adopts it once
// the lease has passed. eu's own sweeper never re-emits what its own
// Kafka holds; it deletes the row once the command is completed.
func TestAdoptionAfterAcknowledgement(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	eu, us := store.New(db, time.Hour).WithRegion("eu").WithAdoption(), store.New(db, time.Hour).WithRegion("us").WithAdoption()
	cmd := claim(t, eu, "k-acked", time.Hour)
	if err := eu.MarkPublished(ctx, []string{cmd.OperationID}); err != nil {
		t.Fatal(err)
	}
	pendingRow := func() (n int, acked string) {
		t.Helper()
		if err := db.Pool.QueryRow(ctx, `SELECT count(*), COALESCE(max(acked_region), '') FROM command_pending WHERE operation_id = $1`,
			cmd.OperationID).Scan(&n, &acked); err != nil {
			t.Fatal(err)
		}
		return n, acked
	}
	if n, acked := pendingRow(); n != 1 || acked != "eu" {
		t.Fatalf("after eu's acknowledgement: %d pending rows, acked by %q; want the row kept, acked by eu", n, acked)
	}
	if v, _, err := eu.Key(ctx, cmd.Tenant, cmd.Operation, cmd.IdempotencyKey); err != nil || v.State != idemgate.ClaimPublished {
		t.Fatalf("state %q (%v), want published", v.State, err)
	}
	expire := func() {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, `UPDATE command_pending SET lease_until = now() - INTERVAL '1 second' WHERE operation_id = $1`,
			cmd.OperationID); err != nil {
			t.Fatal(err)
		}
	}
	// eu's sweeper: the event is on eu's Kafka; nothing to emit.
	expire()
	if cmds, taken, err := eu.ExpiredLeases(ctx, 100); err != nil || len(cmds) != 0 || taken != 1 {
		t.Fatalf("eu's sweeper emitted %d of %d taken (%v), want 0 of 1", len(cmds), taken, err)
	}
	if n, _ := pendingRow(); n != 1 {
		t.Fatalf("eu's sweeper deleted the row of a command not completed")
	}
	// eu is lost: us's sweeper adopts it.
	expire()
	cmds, _, err := us.ExpiredLeases(ctx, 100)
	if err != nil || len(cmds) != 1 || cmds[0].OperationID != cmd.OperationID {
		t.Fatalf("us's sweeper emitted %+v (%v), want the command eu's Kafka acknowledged", cmds, err)
	}
	if v, _, err := us.Command(ctx, cmd.Tenant, cmd.OperationID); err != nil || v.AcceptedRegion != "eu" || v.EmittedRegion != "us" {
		t.Fatalf("adopted: accepted_region %q, emitted_region %q (%v), want eu, us", v.AcceptedRegion, v.EmittedRegion, err)
	}
	if err := us.MarkPublished(ctx, []string{cmd.OperationID}); err != nil {
		t.Fatal(err)
	}
	if n, acked := pendingRow(); n != 1 || acked != "us" {
		t.Fatalf("after us's acknowledgement: %d pending rows, acked by %q; want 1, us", n, acked)
	}
	// Completed: the next sweeper to take the row deletes it, emitting nothing.
	complete(t, us, cmd)
	expire()
	if cmds, taken, err := eu.ExpiredLeases(ctx, 100); err != nil || len(cmds) != 0 || taken != 1 {
		t.Fatalf("after completion eu's sweeper emitted %d of %d taken (%v), want 0 of 1", len(cmds), taken, err)
	}
	if n, _ := pendingRow(); n != 0 {
		t.Fatalf("the pending row of a completed command outlived the sweep")
	}
}
