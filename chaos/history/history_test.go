package history

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Short names for hand-written histories: two bodies, A (the winner) and
// B, under one key; op and op2 are operation ids.
const (
	key = "tenant-a/payments.create/k1"
	fpA = "aaaa"
	fpB = "bbbb"
	op  = "/v1/operations/11111111-1111-4111-8111-111111111111"
	op2 = "/v1/operations/22222222-2222-4222-8222-222222222222"
)

var (
	fresh202   = Answer{Status: 202, Location: op}
	replay202  = Answer{Status: 202, Location: op, Replayed: "true"}
	other202   = Answer{Status: 202, Location: op2, Replayed: "true"}
	stored201  = Answer{Status: 201, ContentType: "application/json", Location: "/v1/payments/p1", Replayed: "true", Body: []byte(`{"id":"p1"}`)}
	stored201b = Answer{Status: 201, ContentType: "application/json", Location: "/v1/payments/p1", Replayed: "true", Body: []byte(`{"id":"p2"}`)}
	conflict   = Answer{Status: 409, ContentType: "application/problem+json"}
	busy503    = Answer{Status: 503, ContentType: "application/problem+json"}
	invalid422 = Answer{Status: 422, ContentType: "application/problem+json"}
	errLost    = errors.New("connection reset")
)

// req is one request of a hand-written history: body, call and return
// times, and its answer (or err).
type req struct {
	client     string
	fp         string
	call, ret  int64
	a          Answer
	err        error
	neverEnded bool
}

func rq(client, fp string, call, ret int64, a Answer, err error) req {
	return req{client: client, fp: fp, call: call, ret: ret, a: a, err: err}
}

// pending is a request that never returned.
func pending(client, fp string, call int64) req {
	return req{client: client, fp: fp, call: call, neverEnded: true}
}

func history(reqs ...req) []Entry {
	var out []Entry
	for _, q := range reqs {
		e := Entry{Client: q.client, Via: "test", Input: Input{Key: key, Fingerprint: q.fp}, Call: q.call, Return: q.ret}
		e.Output = Outcome(q.a, q.err)
		if q.neverEnded {
			e.Return = -1
		}
		out = append(out, e)
	}
	return out
}

func TestLinearizableHistories(t *testing.T) {
	for name, h := range map[string][]Entry{
		"claim, replay, stored, stored again": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c1", fpA, 20, 30, replay202, nil),
			rq("c1", fpA, 40, 50, stored201, nil),
			rq("c2", fpA, 60, 70, stored201, nil)),
		"two bodies race: the loser gets 409": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c2", fpB, 0, 10, conflict, nil),
			rq("c2", fpB, 20, 30, conflict, nil),
			rq("c1", fpA, 40, 50, stored201, nil),
			rq("c2", fpB, 60, 70, conflict, nil)),
		"B is sent first but claims second": history(
			rq("c2", fpB, 0, 30, conflict, nil),
			rq("c1", fpA, 5, 10, fresh202, nil)),
		"a 202 replay concurrent with the first stored answer": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c2", fpA, 20, 60, replay202, nil),
			rq("c1", fpA, 30, 40, stored201, nil)),
		"an unknown outcome claimed the key": history(
			rq("c1", fpA, 0, 10, Answer{}, errLost),
			rq("c2", fpB, 20, 30, conflict, nil),
			rq("c1", fpA, 40, 50, replay202, nil),
			rq("c1", fpA, 60, 70, stored201, nil)),
		"an unknown outcome did not claim the key": history(
			rq("c1", fpA, 0, 10, busy503, nil),
			rq("c2", fpB, 20, 30, fresh202, nil),
			rq("c1", fpA, 40, 50, conflict, nil)),
		"a request that never returned claimed the key; the stored answer comes first": history(
			pending("c1", fpA, 0),
			rq("c1", fpA, 40, 50, stored201, nil),
			rq("c2", fpA, 60, 70, stored201, nil)),
		"a rejected request consumes nothing": history(
			rq("c1", fpB, 0, 10, invalid422, nil),
			rq("c2", fpA, 20, 30, fresh202, nil),
			rq("c2", fpA, 40, 50, stored201, nil)),
		"only a lost request": history(
			rq("c1", fpA, 0, 10, Answer{}, errLost)),
	} {
		t.Run(name, func(t *testing.T) {
			v := Check(h, 10*time.Second)
			if v.Result != porcupine.Ok || len(v.Illegal) != 0 {
				t.Fatalf("got %s (illegal keys %v), want Ok", v.Result, v.Illegal)
			}
		})
	}
}

func TestViolationsAreCaught(t *testing.T) {
	for name, h := range map[string][]Entry{
		"two operation ids for one key": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c1", fpA, 20, 30, other202, nil)),
		"two fresh claims of one key": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c2", fpA, 20, 30, fresh202, nil)),
		"a 202 after a stored answer": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c1", fpA, 20, 30, stored201, nil),
			rq("c2", fpA, 40, 50, replay202, nil)),
		"two different stored answers": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c1", fpA, 20, 30, stored201, nil),
			rq("c2", fpA, 40, 50, stored201b, nil)),
		"two different stored answers, with unknown outcomes around": history(
			rq("c1", fpA, 0, 10, Answer{}, errLost),
			rq("c2", fpA, 5, 10, busy503, nil),
			rq("c1", fpA, 20, 30, stored201, nil),
			rq("c2", fpA, 40, 50, stored201b, nil)),
		"a 409 for the winning body": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c2", fpA, 20, 30, conflict, nil)),
		"a 202 for a losing body": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c2", fpB, 20, 30, replay202, nil)),
		"a stored answer for a losing body": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c2", fpB, 20, 30, stored201, nil)),
		"a 409 for the first body of a key": history(
			rq("c1", fpA, 0, 10, conflict, nil)),
		"both bodies accepted": history(
			rq("c1", fpA, 0, 10, fresh202, nil),
			rq("c2", fpB, 5, 15, replay202, nil)),
	} {
		t.Run(name, func(t *testing.T) {
			v := Check(h, 10*time.Second)
			if v.Result != porcupine.Illegal {
				t.Fatalf("got %s, want Illegal", v.Result)
			}
			if len(v.Illegal) != 1 || v.Illegal[0] != key {
				t.Fatalf("illegal keys %v, want [%s]", v.Illegal, key)
			}
		})
	}
}

// TestOnlyTheBrokenKeyIsNamed: a history of several keys, one of them
// broken, names that key alone, and its visualisation is written.
func TestOnlyTheBrokenKeyIsNamed(t *testing.T) {
	r := NewRecorder()
	for i, k := range []string{"k1", "k2", "k3"} {
		c := r.Begin("c"+k, "submit", Input{Key: k, Fingerprint: fpA})
		c.End(fresh202, nil)
		c = r.Begin("c"+k, "retry", Input{Key: k, Fingerprint: fpA})
		c.End(stored201, nil)
		if i == 1 {
			c = r.Begin("c"+k, "replay", Input{Key: k, Fingerprint: fpA})
			c.End(stored201b, nil)
		}
	}
	v := Check(r.Entries(), 10*time.Second)
	if v.Result != porcupine.Illegal || v.Keys != 3 || v.Operations != 7 || len(v.Illegal) != 1 || v.Illegal[0] != "k2" {
		t.Fatalf("got %s over %d keys, %d operations, illegal %v; want Illegal over 3 keys, 7 operations, [k2]", v.Result, v.Keys, v.Operations, v.Illegal)
	}
	path := filepath.Join(t.TempDir(), "history.html")
	if err := v.WriteVisualization(path, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "k2") || strings.Contains(string(b), "POST k1") {
		t.Fatalf("visualisation (%v): %d bytes, want k2's history alone", err, len(b))
	}
}

// TestAlterMakesAHistoryIllegal: the recorder's hook changes a recorded
// stored answer, and the checker rejects the history.
func TestAlterMakesAHistoryIllegal(t *testing.T) {
	r := NewRecorder()
	stored := 0
	r.Alter(func(e *Entry) {
		if e.Kind == Stored {
			if stored++; stored == 2 {
				e.Answer = "altered"
			}
		}
	})
	r.Begin("c1", "submit", Input{Key: key, Fingerprint: fpA}).End(fresh202, nil)
	r.Begin("c1", "retry", Input{Key: key, Fingerprint: fpA}).End(stored201, nil)
	r.Begin("c1", "retry", Input{Key: key, Fingerprint: fpA}).End(stored201, nil)
	if v := Check(r.Entries(), 10*time.Second); v.Result != porcupine.Illegal {
		t.Fatalf("got %s, want Illegal", v.Result)
	}
}

func TestFingerprint(t *testing.T) {
	a := Fingerprint("/v1/payments", []byte(`{"amount":1000,"currency":"EUR"}`))
	for _, same := range []string{`{ "currency":"\u0045UR", "amount": 1000.0 }`, `{"amount":1e3,"currency":"EUR"}`} {
		if got := Fingerprint("/v1/payments", []byte(same)); got != a {
			t.Errorf("%s: fingerprint %s, want %s", same, got, a)
		}
	}
	if Fingerprint("/v1/payments", []byte(`{"amount":1001,"currency":"EUR"}`)) == a {
		t.Error("another amount has the same fingerprint")
	}
	if Fingerprint("/v1/refunds", []byte(`{"amount":1000,"currency":"EUR"}`)) == a {
		t.Error("another path has the same fingerprint")
	}
}
