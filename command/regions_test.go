package command

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// heldEmitter keeps the commands an API emits (no Kafka here).
type heldEmitter struct {
	mu   sync.Mutex
	cmds []idemgate.Command
}

func (e *heldEmitter) Emit(_ context.Context, cmd idemgate.Command) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cmds = append(e.cmds, cmd)
}

// notes is an API with one operation, notes.create, on db, whose emitted
// commands are held.
type notes struct {
	api     *API
	url     string
	st      *store.Store
	emitter *heldEmitter
}

func newNotes(t *testing.T, db *sqldb.DB, region string) notes {
	t.Helper()
	reg := idemgate.MustRegistry(idemgate.Module{Name: "notes", Operations: []idemgate.Operation{{
		Name: "notes.create", Path: "/v1/notes",
		Validate: func(b []byte) (json.RawMessage, error) { return b, nil },
		Apply: idemgate.TxApplierFunc(func(context.Context, pgx.Tx, idemgate.Command) (idemgate.Response, error) {
			return idemgate.Response{Status: 201}, nil
		}),
	}}})
	st := store.New(db, 0).WithRegion(region)
	em := &heldEmitter{}
	api, err := New(Config{Registry: reg, Store: st, Emitter: em,
		APIKeys: map[[32]byte]string{sha256.Sum256([]byte("k")): "tenant-a"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return notes{api, srv.URL, st, em}
}

// post sends a note under key, waiting for its outcome when wait.
func (n notes) post(t *testing.T, key string, wait bool) (int, string) {
	req := newRequest(t, "POST", n.url+"/v1/notes", `{"text":"hi"}`)
	req.Header.Set("Idempotency-Key", key)
	if wait {
		req.Header.Set("Prefer", "wait=10")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestWaitInAnotherRegion (issue 20): two APIs, regions eu and us, on one
// database. A key accepted in eu is retried in us with Prefer: wait; the
// command is applied on eu's side, and its result event never reaches
// us's results topic (no Kafka here at all). us's request still gets the
// outcome, from its one-query-a-second look at the database
// (WatchWaiters), and it is eu's replay, byte for byte. The claim records
// eu as the region that accepted and emits it; us emitted nothing.
func TestWaitInAnotherRegion(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	open := func(name string) notes {
		n := newNotes(t, db, name)
		go func() { _ = n.api.WatchWaiters(ctx, time.Second) }() // serve's interval
		return n
	}
	eu, us := open("eu"), open("us")

	post := func(r notes, wait bool) (int, string) { return r.post(t, "k-1", wait) }
	if code, body := post(eu, false); code != http.StatusAccepted {
		t.Fatalf("eu: %d %s, want 202", code, body)
	}
	if len(eu.emitter.cmds) != 1 {
		t.Fatalf("eu emitted %d commands, want 1", len(eu.emitter.cmds))
	}
	cmd := eu.emitter.cmds[0]

	type answer struct {
		code int
		body string
	}
	waited := make(chan answer, 1)
	go func() {
		code, body := post(us, true)
		waited <- answer{code, body}
	}()
	testenv.Eventually(t, 5*time.Second, "us's request waits for the operation", func() error {
		if !slices.Contains(us.api.waiters.ids(), cmd.OperationID) {
			return fmt.Errorf("waiting for %v", us.api.waiters.ids())
		}
		return nil
	})
	// eu's projector applies it.
	if fresh, err := eu.st.RecordOnce(ctx, "idemgate", cmd, idemgate.Response{Status: 201, ContentType: "application/json",
		Body: []byte(`{"id":"note-1"}`)}); err != nil || !fresh {
		t.Fatalf("apply: fresh %v, %v", fresh, err)
	}
	var got answer
	select {
	case got = <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("us's waiting request was not answered within 5 s of the outcome")
	}
	if got.code != 201 || got.body != `{"id":"note-1"}` {
		t.Fatalf("us answered %d %s, want eu's outcome 201 {\"id\":\"note-1\"}", got.code, got.body)
	}
	if code, body := post(eu, false); code != got.code || body != got.body {
		t.Fatalf("eu replays %d %s, us answered %d %s: not the same bytes", code, body, got.code, got.body)
	}
	if len(us.emitter.cmds) != 0 {
		t.Fatalf("us emitted %d commands for a key eu holds, want none", len(us.emitter.cmds))
	}
	v, found, err := us.st.Command(ctx, "tenant-a", cmd.OperationID)
	if err != nil || !found || v.AcceptedRegion != "eu" || v.EmittedRegion != "eu" {
		t.Fatalf("claim: found %v, accepted in %q, emitted by %q (%v), want eu, eu", found, v.AcceptedRegion, v.EmittedRegion, err)
	}
}
