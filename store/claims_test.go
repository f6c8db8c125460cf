package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/store"
)

// TestClaimKeysRetriedAtCommitReturnsTheCommittedClaim: the claim
// pipeline's first attempt reads its results (a new claim, with the
// operation id it generated) and then fails at COMMIT with a
// serialization failure (40001), as PostgreSQL's SSI refuses a commit.
// The failure is forced by a deferred constraint trigger that raises
// 40001 the first time a claim is committed: it runs at COMMIT, after
// every statement of the pipeline has returned its row. The whole
// pipeline is retried with a new operation id; what ClaimKeys returns
// must be what the retry committed. Keeping the result read in the
// rolled-back attempt would hand the client an operation id that exists
// nowhere.
func TestClaimKeysRetriedAtCommitReturnsTheCommittedClaim(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	for _, sql := range []string{
		`CREATE SEQUENCE claim_commits`, // not transactional: counts the attempts that reached COMMIT
		`CREATE FUNCTION fail_first_claim_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('claim_commits') = 1 THEN
        RAISE EXCEPTION 'could not serialize access (forced by the test)' USING ERRCODE = '40001';
    END IF;
    RETURN NULL;
END $$`,
		`CREATE CONSTRAINT TRIGGER fail_first_claim_commit AFTER INSERT ON idempotency_claims
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_first_claim_commit()`,
	} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	st := store.New(db, 0)
	claims, err := st.ClaimKeys(ctx, []idemgate.ClaimRequest{{Tenant: "tenant-a", Operation: "notes.create", Key: "k-retried",
		Fingerprint: []byte{1}, Request: json.RawMessage(`{}`), Retention: time.Hour}})
	if err != nil {
		t.Fatalf("ClaimKeys: %v", err)
	}
	var commits int
	if err := db.Pool.QueryRow(ctx, `SELECT last_value FROM claim_commits`).Scan(&commits); err != nil {
		t.Fatal(err)
	}
	if commits != 2 {
		t.Fatalf("%d attempts reached COMMIT, want 2 (one refused with 40001, one retry): the test's premise", commits)
	}
	var ids []string
	rows, err := db.Pool.Query(ctx, `SELECT operation_id::TEXT FROM idempotency_claims WHERE idem_key = 'k-retried'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Fatalf("%d claims of the key committed, want 1", len(ids))
	}
	if c := claims[0]; c.OperationID != ids[0] || !c.Inserted {
		t.Fatalf("ClaimKeys returned operation %s (inserted %v); the committed claim is %s (inserted by this call)", c.OperationID, c.Inserted, ids[0])
	}
	// The key lookup and a second claim agree with what was returned.
	v, found, err := st.Key(ctx, "tenant-a", "notes.create", "k-retried")
	if err != nil || !found || v.OperationID != claims[0].OperationID {
		t.Fatalf("key lookup: %+v found %v err %v; want operation %s", v, found, err, claims[0].OperationID)
	}
	again, err := st.ClaimKeys(ctx, []idemgate.ClaimRequest{{Tenant: "tenant-a", Operation: "notes.create", Key: "k-retried",
		Fingerprint: []byte{1}, Request: json.RawMessage(`{}`), Retention: time.Hour}})
	if err != nil || again[0].Inserted || again[0].OperationID != claims[0].OperationID {
		t.Fatalf("the key claimed again: %+v, %v; want the first claim's operation %s", again, err, claims[0].OperationID)
	}
}
