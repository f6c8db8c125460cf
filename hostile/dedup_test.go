package hostile

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// TestDedupRecordsArePruned (finding 10, processed_events grew for ever),
// at the store: dedup records older than the window are deleted in
// batches, younger ones kept; an event redelivered after its record was
// pruned has no effect, whether its claim is completed or already gone
// past its retention.
func TestDedupRecordsArePruned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.OpenDB(t, env.NewDatabase(t, migrations(t)...))
	st := store.New(db, time.Second)
	const projector = "hostile"
	var effects atomic.Int64
	effect := func(context.Context, pgx.Tx) (idemgate.Response, error) {
		effects.Add(1)
		return idemgate.Response{Status: 201, ContentType: "application/json", Body: []byte(`{"ok":true}`)}, nil
	}
	var cmds []idemgate.Command
	for i := range 6 {
		key := fmt.Sprintf("dedup-%d", i)
		claims, err := st.ClaimKeys(ctx, []idemgate.ClaimRequest{{Tenant: "tenant-a", Operation: "payments.create", Key: key,
			Fingerprint: []byte(key), Request: []byte(`{}`), Retention: time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		cmd := idemgate.Command{OperationID: claims[0].OperationID, Tenant: "tenant-a", Operation: "payments.create",
			IdempotencyKey: key, Request: []byte(`{}`), AcceptedAt: claims[0].AcceptedAt}
		if _, fresh, err := st.ApplyOnce(ctx, projector, cmd, effect, nil); err != nil || !fresh {
			t.Fatalf("apply %s: fresh %v, %v", key, fresh, err)
		}
		cmds = append(cmds, cmd)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := db.Pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	ids := func(cs []idemgate.Command) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.OperationID)
		}
		return out
	}
	// Five records are 9 days old, one is fresh; the window is 8 days. The
	// keys of the first four are also past their retention: the janitor
	// deletes their claims. A record is pruned once past the window AND
	// its claim gone: the fifth, whose claim remains, is kept.
	exec(`UPDATE processed_events SET processed_at = now() - INTERVAL '9 days' WHERE event_id = ANY($1)`, ids(cmds[:5]))
	exec(`UPDATE idempotency_claims SET expires_at = now() - INTERVAL '1 hour' WHERE operation_id = ANY($1)`, ids(cmds[:4]))
	if n, err := st.DeleteExpired(ctx, 100); err != nil || n != 4 {
		t.Fatalf("DeleteExpired = %d, %v; want 4", n, err)
	}
	var pruned []int
	for {
		n, err := st.DeleteOldDedupRecords(ctx, 8*24*time.Hour, 3)
		if err != nil {
			t.Fatal(err)
		}
		pruned = append(pruned, n)
		if n < 3 {
			break
		}
	}
	if left := count(`SELECT count(*) FROM processed_events`); left != 2 || pruned[0]+pruned[1] != 4 {
		t.Fatalf("pruned in batches of 3: %v, %d records left; want 4 pruned, 2 left (one fresh, one whose claim remains)", pruned, left)
	}

	// Every event delivered again: no effect, no new dedup record, no new
	// outcome.
	before, outcomes := effects.Load(), count(`SELECT count(*) FROM outbox`)
	for _, c := range cmds {
		if _, fresh, err := st.ApplyOnce(ctx, projector, c, effect, nil); err != nil || fresh {
			t.Fatalf("redelivery of %s: fresh %v, %v; want no effect", c.IdempotencyKey, fresh, err)
		}
	}
	if after := effects.Load(); after != before {
		t.Fatalf("the redeliveries ran the effect %d times", after-before)
	}
	if n := count(`SELECT count(*) FROM processed_events`); n != 2 {
		t.Fatalf("processed_events = %d after the redeliveries, want 2", n)
	}
	if n := count(`SELECT count(*) FROM outbox`); n != outcomes {
		t.Fatalf("outbox = %d after the redeliveries, was %d", n, outcomes)
	}
	t.Logf("6 dedup records, 4 past the 8-day window: pruned %v in batches of 3; 6 redeliveries (one of a claim gone past its retention) applied nothing", pruned)
}
