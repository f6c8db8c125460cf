package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
)

// TestConsoleReads: the console's list walks every claim once across
// its keyset pages, newest first, within the tenants and the operation
// asked for; its overview counts them per minute and what waits.
func TestConsoleReads(t *testing.T) {
	ctx := context.Background()
	st := store.New(newDB(t), 0)
	var ids []string // tenant-a's notes.create claims, oldest first
	for i := range 7 {
		for _, tenant := range []string{"tenant-a", "tenant-b"} {
			claims, err := st.ClaimKeys(ctx, []idemgate.ClaimRequest{{Tenant: tenant, Operation: "notes.create",
				Key: fmt.Sprint("k-", i), Fingerprint: []byte{1}, Request: json.RawMessage(`{}`), Retention: time.Hour}})
			if err != nil {
				t.Fatal(err)
			}
			if tenant == "tenant-a" {
				ids = append(ids, claims[0].OperationID)
			}
		}
	}
	other := claim(t, st, "other-op", time.Hour) // tenant-a, notes.create
	ids = append(ids, other.OperationID)
	complete(t, st, other)

	var seen []string
	f := store.KeyFilter{AnyState: true, Tenants: []string{"tenant-a"}, Operation: "notes.create", NewestFirst: true, Limit: 3}
	for page := 0; ; page++ {
		keys, err := st.Keys(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.Tenant != "tenant-a" || k.Operation != "notes.create" {
				t.Fatalf("page %d lists %s/%s", page, k.Tenant, k.Operation)
			}
			seen = append(seen, k.OperationID)
		}
		if len(keys) < f.Limit {
			break
		}
		c := keys[len(keys)-1].Cursor()
		f.After = &c
	}
	if len(seen) != len(ids) {
		t.Fatalf("the pages listed %d claims, want %d", len(seen), len(ids))
	}
	for i := range seen {
		if seen[i] != ids[len(ids)-1-i] {
			t.Fatalf("claim %d of the pages is %s, want %s (newest first, each once)", i, seen[i], ids[len(ids)-1-i])
		}
	}
	if keys, err := st.Keys(ctx, store.KeyFilter{State: idemgate.ClaimCompleted, Tenants: []string{"tenant-b"}, Limit: 10}); err != nil || len(keys) != 0 {
		t.Fatalf("tenant-b's completed claims: %d, %v", len(keys), err)
	}
	if keys, err := st.Keys(ctx, store.KeyFilter{State: idemgate.ClaimCompleted, Tenants: []string{"tenant-a", "tenant-b"}, Limit: 10}); err != nil || len(keys) != 1 {
		t.Fatalf("the two tenants' completed claims: %d, %v", len(keys), err)
	}

	acc, comp, err := st.Throughput(ctx, []string{"tenant-a"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(ms []store.Minute) (n int) {
		for _, m := range ms {
			n += m.Count
		}
		return n
	}
	if sum(acc) != 8 || sum(comp) != 1 {
		t.Fatalf("tenant-a: %d accepted, %d completed in the hour; want 8 and 1", sum(acc), sum(comp))
	}
	b, err := st.Backlog(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Pending != 14 || b.Unacknowledged != 14 || b.OldestPending.IsZero() || b.DeadLettered != 0 || b.OutcomeUnknown != 0 {
		t.Fatalf("backlog of every tenant %+v: want 14 pending, not yet acknowledged", b)
	}
	// Its event was never acknowledged here (no emitter): its lease shows.
	v, found, err := st.Operation(ctx, "test", other.OperationID)
	if err != nil || !found || string(v.Request) != `{}` || v.AppliedAt == nil || v.LeaseUntil == nil || v.Response == nil {
		t.Fatalf("the completed claim's view: %+v found %v, %v", v, found, err)
	}
}
