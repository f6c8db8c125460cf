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

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/emit"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// newTestAPI serves one operation, notes.create, on a database of t's own;
// no Kafka: these tests stop before anything is emitted.
func newTestAPI(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	st := store.New(db, 0)
	reg := idemgate.MustRegistry(idemgate.Module{Name: "notes", Operations: []idemgate.Operation{{
		Name: "notes.create", Path: "/v1/notes",
		Validate: func(b []byte) (json.RawMessage, error) { return b, nil },
		Apply: idemgate.TxApplierFunc(func(context.Context, pgx.Tx, idemgate.Command) (idemgate.Response, error) {
			return idemgate.Response{Status: 201}, nil
		}),
	}}})
	api, err := New(Config{Registry: reg, Store: st, Emitter: emit.New(context.Background(), nil, "unused", st, nil, nil),
		APIKeys: map[[32]byte]string{sha256.Sum256([]byte("k")): "tenant-a"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv, st
}

// TestLostDatabaseIs503 loses the database under requests: the answer is
// a 503 /unavailable with Retry-After (retry with the same key), never a
// 500, since nothing was recorded for the request.
func TestLostDatabaseIs503(t *testing.T) {
	srv, st := newTestAPI(t)
	st.DB().Close()
	for name, req := range map[string]*http.Request{
		"Post":         newRequest(t, "POST", srv.URL+"/v1/notes", `{"text":"hi"}`),
		"GetOperation": newRequest(t, "GET", srv.URL+"/v1/operations/6f1c1f0e-8a43-4d3e-9d0a-6a1c8e1d2b7f", ""),
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `/problems/unavailable"`) {
				t.Fatalf("answer %d %s, want 503 unavailable", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Retry-After"); got != "1" {
				t.Fatalf("Retry-After = %q, want 1", got)
			}
			if got := resp.Header.Get("Content-Type"); got != idemgate.ContentTypeProblem {
				t.Fatalf("Content-Type = %q", got)
			}
		})
	}
}

func newRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer k")
	req.Header.Set("Idempotency-Key", "k-1")
	req.Header.Set("Content-Type", "application/json")
	return req
}
