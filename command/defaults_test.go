package command

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/emit"
	"github.com/idemgate/idemgate/store"
)

// TestKeyReusedWithAnotherRequestIs409ByDefault: with no MismatchStatus
// configured, a key already claimed for a different request is answered
// 409 /idempotency-key-reused.
func TestKeyReusedWithAnotherRequestIs409ByDefault(t *testing.T) {
	srv, st := newTestAPI(t)
	if _, err := st.ClaimKeys(context.Background(), []idemgate.ClaimRequest{{Tenant: "tenant-a", Operation: "notes.create",
		Key: "k-1", Fingerprint: []byte("another request"), Request: json.RawMessage(`{}`), Retention: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(newRequest(t, "POST", srv.URL+"/v1/notes", `{"text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), `/problems/idempotency-key-reused"`) {
		t.Fatalf("answer %d %s, want 409 idempotency-key-reused", resp.StatusCode, body)
	}
}

// TestAuthenticationScheme: the scheme is "Bearer", in any case (RFC 9110
// 11.1); another scheme of the same length, an empty token or an unknown
// key is a 401, even when what follows the scheme is a known key.
func TestAuthenticationScheme(t *testing.T) {
	srv, _ := newTestAPI(t)
	for _, tc := range []struct {
		authorization string
		want          int
	}{
		{"Bearer k", http.StatusNotFound}, // authenticated: the operation is unknown
		{"bearer k", http.StatusNotFound},
		{"BEARER k", http.StatusNotFound},
		{"Beaver k", http.StatusUnauthorized},
		{"Basic  k", http.StatusUnauthorized},
		{"Bearer ", http.StatusUnauthorized},
		{"Bearer unknown", http.StatusUnauthorized},
		{"", http.StatusUnauthorized},
	} {
		req := newRequest(t, "GET", srv.URL+"/v1/operations/6f1c1f0e-8a43-4d3e-9d0a-6a1c8e1d2b7f", "")
		req.Header.Set("Authorization", tc.authorization)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: %d, want %d", tc.authorization, resp.StatusCode, tc.want)
		}
	}
}

// TestDefaultRetention: an operation that sets no retention keeps its
// completed responses for 24 hours; one that sets it keeps its own.
func TestDefaultRetention(t *testing.T) {
	st := store.New(nil, 0) // never reached: only the configuration is read
	reg := idemgate.MustRegistry(idemgate.Module{Name: "notes", Operations: []idemgate.Operation{{
		Name: "notes.create", Path: "/v1/notes",
		Validate: func(b []byte) (json.RawMessage, error) { return b, nil },
		Apply: idemgate.TxApplierFunc(func(context.Context, pgx.Tx, idemgate.Command) (idemgate.Response, error) {
			return idemgate.Response{Status: 201}, nil
		}),
	}}})
	api, err := New(Config{Registry: reg, Store: st, Emitter: emit.New(context.Background(), nil, "unused", st, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if got := api.cfg.Retention(idemgate.Operation{Name: "notes.create"}); got != 24*time.Hour {
		t.Fatalf("retention without one set = %v, want 24h", got)
	}
	if got := api.cfg.Retention(idemgate.Operation{Name: "notes.create", Retention: time.Hour}); got != time.Hour {
		t.Fatalf("retention set to 1h = %v, want 1h", got)
	}
}
