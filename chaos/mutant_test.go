package chaos

// The mutation check of the history checker (issue 19): idemgate's own
// mutation point fault.ReplayOtherAnswer makes a replay serve another
// operation's stored answer, and porcupine must reject the history that
// results. It runs in `go test ./...` at a small size: one `idemgate dev`
// process (a private PostgreSQL and the in-process Kafka), a few keys.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/idemgate/idemgate/chaos/history"
	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// histClient sends POSTs to base and records them in rec.
type histClient struct {
	base string
	http *http.Client
	rec  *history.Recorder
}

// post sends body under key to path as the client named client, and
// records it.
func (h *histClient) post(client, via, key, path, body string) (history.Output, error) {
	call := h.rec.Begin(client, via, history.Input{Key: "tenant-a/payments.create/" + key, Fingerprint: history.Fingerprint(path, []byte(body))})
	a, err := h.do(key, path, body)
	return call.End(a, err), err
}

func (h *histClient) do(key, path, body string) (history.Answer, error) {
	req, err := http.NewRequest("POST", h.base+path, strings.NewReader(body))
	if err != nil {
		return history.Answer{}, err
	}
	req.Header.Set("Authorization", "Bearer key-a")
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.http.Do(req)
	if err != nil {
		return history.Answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return history.Answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Location: resp.Header.Get("Location"),
		Replayed: resp.Header.Get("Idempotent-Replayed"), Body: b}, err
}

func TestHistoryCatchesAReplayOfAnotherAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts idemgate dev, with a PostgreSQL server; skipped with -short")
	}
	dir := t.TempDir()
	port := testenv.NewPort(t)
	env := []string{"IDEMGATE_API_KEYS=key-a=tenant-a", "IDEMGATE_LEASE=1s", "IDEMGATE_SWEEP_INTERVAL=200ms"}
	dev := testenv.StartProc(t, "dev", env, testenv.Binary(t), "dev", "--data-dir", filepath.Join(dir, "data"), "--addr", port.Addr())
	h := &histClient{base: "http://" + port.Addr(), http: &http.Client{Timeout: 5 * time.Second}, rec: history.NewRecorder()}
	dev.WaitReady(h.base, 90*time.Second)

	// The correct product: each key raced by two clients (in two
	// spellings), contested by another body, followed until its stored
	// answer, then replayed in turns. The history is linearizable.
	const path = "/v1/payments"
	keys := []string{"mut-1", "mut-2", "mut-3", "mut-4"}
	body := func(i int, spelling int) string {
		return []string{
			fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"cus_m"}`, 1000+i),
			fmt.Sprintf(`{ "customer":"cus_m", "currency":"\u0045UR", "amount": %d.0 }`, 1000+i),
			fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"cus_other"}`, 1000+i),
		}[spelling]
	}
	var wg sync.WaitGroup
	for i, k := range keys {
		for s := 0; s < 2; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := fmt.Sprintf("%s-racer-%d", k, s)
				// A racer that arrives after the other's command completed
				// gets the stored answer, as it should: on a loaded box the
				// in-process pipeline can finish before the second goroutine
				// sends (a fresh-clone CI run waited 30 s here for a 202 that
				// could never come).
				err := testenv.Poll(context.Background(), 30*time.Second, func() error {
					out, err := h.post(client, "race", k, path, body(i, s))
					return testenv.Check(err == nil && (out.Kind == history.Accepted || out.Kind == history.Stored), "%s: %v %v", k, out.Kind, err)
				})
				if err != nil {
					t.Error(err)
					return
				}
				if s == 1 {
					out, err := h.post(client, "another body", k, path, body(i, 2))
					if err != nil || out.Kind != history.Conflict {
						t.Errorf("%s, another body: %v %v, want 409", k, out.Kind, err)
					}
				}
				err = testenv.Poll(context.Background(), 60*time.Second, func() error {
					out, err := h.post(client, "follow", k, path, body(i, s))
					return testenv.Check(err == nil && out.Kind == history.Stored, "%s: not stored yet (%v %v)", k, out.Kind, err)
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	replayInTurns := func() {
		for round := 0; round < 2; round++ {
			for i, k := range keys {
				if _, err := h.post("replayer", "replay", k, path, body(i, round%2)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	replayInTurns()
	v := history.Check(h.rec.Entries(), time.Minute)
	if v.Result != porcupine.Ok {
		t.Fatalf("the correct product's history: %s (illegal keys %v), want Ok", v.Result, v.Illegal)
	}
	t.Logf("correct product: %s over %d requests, %d keys", v.Result, v.Operations, v.Keys)

	// The mutant: the same process, restarted with the mutation point on,
	// serves each replay the answer it replayed before, another key's.
	dev.Stop(20 * time.Second)
	dev.Env = append(slices.Clone(env), "IDEMGATE_FAULTS="+fault.ReplayOtherAnswer+"=1")
	dev.Restart()
	dev.WaitReady(h.base, 90*time.Second)
	replayInTurns()
	v = history.Check(h.rec.Entries(), time.Minute)
	if v.Result != porcupine.Illegal {
		t.Fatalf("with %s: %s over %d requests, want Illegal", fault.ReplayOtherAnswer, v.Result, v.Operations)
	}
	for _, k := range v.Illegal {
		if !slices.Contains(keys, strings.TrimPrefix(k, "tenant-a/payments.create/")) {
			t.Errorf("illegal key %q is none of the replayed keys", k)
		}
	}
	// Every key but the first replay's is served another key's answer.
	if len(v.Illegal) != len(keys) {
		t.Errorf("illegal keys %v, want all %d keys", v.Illegal, len(keys))
	}
	html := filepath.Join(dir, "history.html")
	if err := v.WriteVisualization(html, time.Minute); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(html); err != nil || fi.Size() == 0 {
		t.Fatalf("visualisation: %v", err)
	}
	t.Logf("mutant: %s over %d requests; illegal keys %v", v.Result, v.Operations, v.Illegal)
}
