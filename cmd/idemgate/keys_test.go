package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/idemgate/idemgate"
)

type keyView struct {
	Tenant      string `json:"tenant"`
	Operation   string `json:"operation"`
	Key         string `json:"key"`
	OperationID string `json:"operation_id"`
	State       string `json:"state"`
	Fingerprint string `json:"fingerprint"`
	ExpiresAt   string `json:"expires_at"`
	CompletedAt string `json:"completed_at"`
	Failed      bool   `json:"failed"`
	Response    *struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	} `json:"response"`
}

func TestKeyLookup(t *testing.T) {
	s := startStack(t)
	// Keys may hold any visible ASCII, '/' and '%' included: escaped in
	// the path.
	for _, key := range []string{"look-1", "a/b%c"} {
		t.Run("Completed/"+key, func(t *testing.T) {
			s := s.on(t)
			r := s.postPayment("key-a", key, payment)
			op := mustPending(t, "first", r, false)
			rec := s.outcomeOf("key-a", r.Header.Get("Location"))
			got := s.do("GET", "/v1/idempotency-keys/payments.create/"+pathEscape(key), "key-a", "", "", "")
			mustEqual(t, "status", got.Status, 200)
			var v keyView
			if err := json.Unmarshal(got.Body, &v); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, "key", v.Key, key)
			mustEqual(t, "operation_id", v.OperationID, op)
			mustEqual(t, "state", v.State, "completed")
			mustEqual(t, "fingerprint", strings.HasPrefix(v.Fingerprint, "sha256:") && len(v.Fingerprint) == 71, true)
			mustEqual(t, "expires_at", v.ExpiresAt != "" && v.CompletedAt != "", true)
			if v.Response == nil || v.Response.Status != rec.Status || string(v.Response.Body) != string(rec.Body) {
				t.Fatalf("response %+v, recorded %d %s", v.Response, rec.Status, rec.Body)
			}
			// Another tenant's key is not found, as one never claimed.
			mustProblem(t, "tenant-b", s.do("GET", "/v1/idempotency-keys/payments.create/"+pathEscape(key), "key-b", "", "", ""), 404, "/not-found")
		})
	}
	t.Run("UnknownKey", func(t *testing.T) {
		mustProblem(t, "never claimed", s.on(t).do("GET", "/v1/idempotency-keys/payments.create/nope", "key-a", "", "", ""), 404, "/not-found")
	})
	t.Run("UnknownOperation", func(t *testing.T) {
		mustProblem(t, "operation", s.on(t).do("GET", "/v1/idempotency-keys/transfers.create/look-1", "key-a", "", "", ""), 404, "/not-found")
	})
	t.Run("Unauthenticated", func(t *testing.T) {
		mustProblem(t, "no key", s.on(t).do("GET", "/v1/idempotency-keys/payments.create/look-1", "", "", "", ""), 401, "/unauthorized")
	})
}

func pathEscape(k string) string { return strings.NewReplacer("%", "%25", "/", "%2F").Replace(k) }

func TestInspectAndList(t *testing.T) {
	s := startAPIOnly(t) // no projector: what is accepted stays pending
	r := s.postPayment("key-a", "pending-1", payment)
	op := mustPending(t, "first", r, false)
	getenv := func(k string) string { return s.vars[k] }
	runCLI := func(t *testing.T, args ...string) (string, string, error) {
		var out, errOut strings.Builder
		err := run(context.Background(), args, getenv, &out, &errOut)
		return out.String(), errOut.String(), err
	}
	t.Run("InspectByOperationID", func(t *testing.T) {
		out, _, err := runCLI(t, "inspect", op)
		if err != nil {
			t.Fatal(err)
		}
		var v keyView
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		mustEqual(t, "tenant", v.Tenant, "tenant-a")
		mustEqual(t, "key", v.Key, "pending-1")
		if v.State != "accepted" && v.State != "published" {
			t.Fatalf("state %q, want accepted or published", v.State)
		}
	})
	t.Run("InspectByKey", func(t *testing.T) {
		out, _, err := runCLI(t, "inspect", "--tenant", "tenant-a", "--operation", "payments.create", "--key", "pending-1")
		if err != nil || !strings.Contains(out, op) {
			t.Fatalf("%v: %s", err, out)
		}
		if _, _, err := runCLI(t, "inspect", "--tenant", "tenant-b", "--operation", "payments.create", "--key", "pending-1"); err == nil {
			t.Fatal("another tenant's key was found")
		}
	})
	t.Run("ListPending", func(t *testing.T) {
		out, _, err := runCLI(t, "list", "--state", "pending")
		if err != nil || !strings.Contains(out, op) || !strings.Contains(out, `"pending-1"`) {
			t.Fatalf("%v: %s", err, out)
		}
		out, _, err = runCLI(t, "list", "--state", "pending", "--older-than", "1h")
		if err != nil || strings.Contains(out, op) {
			t.Fatalf("a claim a second old is listed as older than 1h: %v %s", err, out)
		}
	})
	t.Run("ListDeadLettered", func(t *testing.T) {
		failed := "6f1c1f0e-8a43-4d3e-9d0a-6a1c8e1d2b7f"
		s.insertClaim(failed, "failed-1", payment, payment)
		p := idemgate.NewProblem(500, idemgate.ProblemProcessingFailed, "Processing failed", "x")
		if _, err := s.db.Pool.Exec(context.Background(), `INSERT INTO outbox (operation_id, tenant_id, operation, status, content_type, body)
VALUES ($1, 'tenant-a', 'payments.create', 500, $2, $3)`, failed, idemgate.ContentTypeProblem, p.Body()); err != nil {
			t.Fatal(err)
		}
		// failed is the first name of dead_lettered, still accepted.
		for _, state := range []string{"dead_lettered", "failed"} {
			out, _, err := runCLI(t, "list", "--state", state)
			if err != nil || !strings.Contains(out, failed) || strings.Contains(out, op) || !strings.Contains(out, "dead_lettered (500)") {
				t.Fatalf("--state %s: %v: %s", state, err, out)
			}
		}
	})
	t.Run("ErrUsage", func(t *testing.T) {
		for _, args := range [][]string{{"inspect"}, {"inspect", "not-a-uuid"}, {"inspect", "--tenant", "t"}, {"list", "--state", "stuck"}, {"list", "--limit", "0"}} {
			_, _, err := runCLI(t, args...)
			var u *usageError
			if err == nil || !errors.As(err, &u) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%v: err = %v, want one usage line", args, err)
			}
		}
	})
}
