package store_test

import (
	"context"
	"testing"
	"time"

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
	cmds, err := us.ExpiredLeases(ctx, 100)
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
	if cmds, err := store.New(db, time.Hour).ExpiredLeases(ctx, 100); err != nil || len(cmds) != 1 {
		t.Fatalf("taken %d (%v), want 1", len(cmds), err)
	}
	if a, e := regions(eu, adopted.OperationID); a != "eu" || e != "us" {
		t.Fatalf("re-emitted without a region: accepted_region %q, emitted_region %q, want eu, us", a, e)
	}
}
