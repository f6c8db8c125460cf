package command

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/emit"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// TestPathParametersAreTheTarget: a route's {name} parameters reach the
// operation as its target, which is part of the request's identity, and
// reach a read route as its parameters. The same key and body under
// another path parameter is another request (409); under the claimed
// one it is a retry.
func TestPathParametersAreTheTarget(t *testing.T) {
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	st := store.New(db, 0)
	reg := idemgate.MustRegistry(idemgate.Module{Name: "notes",
		Operations: []idemgate.Operation{{
			Name: "notes.file", Path: "/v1/notebooks/{book}/notes",
			Validate: func(b []byte) (json.RawMessage, error) { return b, nil },
			Apply: idemgate.TxApplierFunc(func(context.Context, pgx.Tx, idemgate.Command) (idemgate.Response, error) {
				return idemgate.Response{Status: 201}, nil
			}),
		}},
		Reads: []idemgate.Read{{Path: "/v1/notebooks/{book}", Handle: func(_ context.Context, _ pgx.Tx, req idemgate.ReadRequest) (idemgate.Response, error) {
			b, err := json.Marshal(req.Params)
			return idemgate.Response{Status: 200, ContentType: "application/json", Body: b}, err
		}}},
	})
	api, err := New(Config{Registry: reg, Store: st, Emitter: emit.New(context.Background(), nil, "unused", st, nil, nil),
		APIKeys: map[[32]byte]string{sha256.Sum256([]byte("k")): "tenant-a"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)

	// The claim a first request for notebook b1 made (claimed here, so
	// that no event needs emitting).
	body := `{"text":"hi"}`
	canonical, err := Canonicalize([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := st.ClaimKeys(context.Background(), []idemgate.ClaimRequest{{Tenant: "tenant-a", Operation: "notes.file",
		Key: "k-1", Target: "b1", Fingerprint: Fingerprint("notes.file", "b1", canonical),
		Request: json.RawMessage(body), Retention: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) (int, string, http.Header) {
		t.Helper()
		resp, err := http.DefaultClient.Do(newRequest(t, method, srv.URL+path, body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	status, got, h := do("POST", "/v1/notebooks/b1/notes", body)
	if status != http.StatusAccepted || h.Get("Idempotent-Replayed") != "true" ||
		h.Get("Location") != "/v1/operations/"+claims[0].OperationID {
		t.Fatalf("retry under the claimed notebook: %d %s %v, want the pending 202 replayed", status, got, h)
	}
	status, got, _ = do("POST", "/v1/notebooks/b2/notes", body)
	if status != http.StatusConflict || !strings.Contains(got, "/problems/idempotency-key-reused") {
		t.Fatalf("same key and body under another notebook: %d %s, want 409", status, got)
	}
	status, got, _ = do("GET", "/v1/notebooks/b7", "")
	if status != http.StatusOK || got != `{"book":"b7"}` {
		t.Fatalf("read: %d %s, want 200 {\"book\":\"b7\"}", status, got)
	}
}
