// Package history records what clients saw of idemgate's POST routes and
// checks it for linearizability with porcupine
// (github.com/anishathalye/porcupine), per idempotency key, against a
// model of the contract:
//
//   - the first request body to claim a key wins;
//   - a request whose outcome is unknown (a transport error, a time-out, a
//     5xx that is not a stored answer, such as a 503 with Retry-After) may
//     or may not have claimed it;
//   - the winning body gets 202 with one operation id until the outcome is
//     stored, then the stored answer, the same bytes every time, and never
//     202 again;
//   - any other body gets 409.
//
// The chaos test (package chaos) records every request it sends, and
// checks the history at the end of the run.
package history

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/gowebpki/jcs"
)

// Input is a POST under an idempotency key.
type Input struct {
	// Key names the key's claim: tenant, operation and Idempotency-Key.
	// The history is checked per Key.
	Key string
	// Fingerprint names the request: equal for the same request however
	// its body is spelled (Fingerprint), different for another one.
	Fingerprint string
}

// Kind is what an answer says about the key.
type Kind uint8

const (
	// Unknown: a transport error, a time-out, or a 5xx that is not a
	// stored answer. The request may or may not have claimed the key.
	Unknown Kind = iota
	// Accepted: 202, the command is pending under OpID.
	Accepted
	// Stored: the stored answer (Idempotent-Replayed: true), hashed.
	Stored
	// Conflict: idemgate's 409, the key is another request's.
	Conflict
	// Rejected: refused before the claim (a 4xx that is no stored
	// answer): the key is not consumed.
	Rejected
)

func (k Kind) String() string {
	switch k {
	case Accepted:
		return "202"
	case Stored:
		return "stored"
	case Conflict:
		return "409"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Output is what a request got.
type Output struct {
	Kind Kind
	// OpID is the operation a 202 names.
	OpID string
	// Fresh: a 202 without Idempotent-Replayed, so this request inserted
	// the claim.
	Fresh bool
	// Answer is the hash of a stored answer: status, Content-Type,
	// Location and body.
	Answer string
	// Status is the HTTP status (0 for a transport error); for the
	// visualisation only.
	Status int
}

// Answer is an HTTP answer, read whole.
type Answer struct {
	Status                          int
	ContentType, Location, Replayed string // Replayed: the Idempotent-Replayed header
	Body                            []byte
}

// Outcome classifies an answer (err: the request failed in transport or
// timed out).
func Outcome(a Answer, err error) Output {
	if err != nil {
		return Output{Kind: Unknown}
	}
	out := Output{Status: a.Status}
	replayed := a.Replayed == "true"
	switch {
	case a.Status == http.StatusAccepted:
		out.Kind, out.Fresh = Accepted, !replayed
		out.OpID, _ = strings.CutPrefix(a.Location, "/v1/operations/")
	case replayed:
		out.Kind = Stored
		h := sha256.New()
		fmt.Fprintf(h, "%d\n%s\n%s\n", a.Status, a.ContentType, a.Location)
		h.Write(a.Body)
		out.Answer = hex.EncodeToString(h.Sum(nil)[:8])
	case a.Status == http.StatusConflict:
		out.Kind = Conflict
	case a.Status >= 500 || a.Status == http.StatusRequestTimeout || a.Status == http.StatusTooManyRequests:
		out.Kind = Unknown
	default:
		out.Kind = Rejected
	}
	return out
}

// Fingerprint is a request's fingerprint: its path (which names the
// operation and its target) and the RFC 8785 canonical form of its body,
// so that "1000" and "1000.0", key order and white space do not count.
// A body with no canonical form is fingerprinted as it is.
func Fingerprint(path string, body []byte) string {
	canonical, err := jcs.Transform(body)
	if err != nil {
		canonical = body
	}
	h := sha256.New()
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(canonical)
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// Entry is one recorded request.
type Entry struct {
	Client string `json:"client"` // who sent it (a lane of the visualisation)
	Via    string `json:"via"`    // why: submit, race, retry, replay...
	Input
	Output
	Call   int64  `json:"call"`   // ns since the recorder started, on the monotonic clock
	Return int64  `json:"return"` // likewise; -1 while in flight
	Err    string `json:"err,omitempty"`
}

// Recorder records requests on one monotonic clock. It is safe for
// concurrent use.
type Recorder struct {
	base    time.Time
	mu      sync.Mutex
	entries []*Entry
	alter   func(*Entry) // a test's hook (Alter)
}

// NewRecorder starts a history.
func NewRecorder() *Recorder { return &Recorder{base: time.Now()} }

func (r *Recorder) now() int64 { return int64(time.Since(r.base)) }

// Base is the moment the history's times count from (Entry.Call, Return).
func (r *Recorder) Base() time.Time { return r.base }

// Call is a request in flight.
type Call struct {
	r *Recorder
	e *Entry
}

// Begin records a request's call; End records its return.
func (r *Recorder) Begin(client, via string, in Input) *Call {
	e := &Entry{Client: client, Via: via, Input: in, Return: -1}
	r.mu.Lock()
	e.Call = r.now()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
	return &Call{r: r, e: e}
}

// End records the request's return: a, or err.
func (c *Call) End(a Answer, err error) Output {
	out := Outcome(a, err)
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	c.e.Return = c.r.now()
	c.e.Output = out
	if err != nil {
		c.e.Err = err.Error()
	}
	if c.r.alter != nil {
		c.r.alter(c.e)
	}
	return out
}

// Alter sets a hook that may change each entry as it is recorded: for
// the tests that show the checker catches a history that is wrong.
func (r *Recorder) Alter(f func(*Entry)) {
	r.mu.Lock()
	r.alter = f
	r.mu.Unlock()
}

// Len is the number of requests recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// Entries is a copy of the history so far.
func (r *Recorder) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Entry, len(r.entries))
	for i, e := range r.entries {
		out[i] = *e
	}
	return out
}

// Operations turns entries into porcupine's operations. A request whose
// outcome is unknown, or that never returned, returns at the end of the
// history: it may have taken effect at any moment after its call.
func Operations(entries []Entry) []porcupine.Operation {
	var end int64
	for _, e := range entries {
		end = max(end, e.Call, e.Return)
	}
	end++
	clients := map[string]int{}
	var names []string
	for _, e := range entries {
		if _, ok := clients[e.Client]; !ok {
			clients[e.Client] = 0
			names = append(names, e.Client)
		}
	}
	sort.Strings(names)
	for i, n := range names {
		clients[n] = i
	}
	ops := make([]porcupine.Operation, 0, len(entries))
	for _, e := range entries {
		ret := e.Return
		out := e.Output
		if ret < 0 || out.Kind == Unknown {
			ret, out = end, Output{Kind: Unknown, Status: out.Status}
		}
		ops = append(ops, porcupine.Operation{ClientId: clients[e.Client], Input: e.Input, Call: e.Call,
			Output: out, Return: ret, Metadata: fmt.Sprintf("%s %s", e.Client, e.Via)})
	}
	return ops
}

// phase is where a key is in its life.
type phase uint8

const (
	unclaimed phase = iota
	claimed         // by Fingerprint, under OpID ("" while no 202 named it)
	stored          // Answer is its stored answer
)

// State is one possible state of a key.
type State struct {
	Phase       phase
	Fingerprint string
	OpID        string
	Answer      string
}

func (s State) String() string {
	switch s.Phase {
	case claimed:
		op := s.OpID
		if op == "" {
			op = "?"
		}
		return fmt.Sprintf("claimed(%s, %s)", s.Fingerprint, op)
	case stored:
		return fmt.Sprintf("stored(%s, %s, %s)", s.Fingerprint, s.OpID, s.Answer)
	}
	return "unclaimed"
}

// step gives the states a key can be in after a request in with output
// out, from s; none when the answer is impossible from s.
func step(s State, in Input, out Output) []State {
	same := s.Phase != unclaimed && in.Fingerprint == s.Fingerprint
	switch out.Kind {
	case Unknown:
		if s.Phase == unclaimed {
			// It may have claimed the key, under an operation id no one
			// saw yet, or not.
			return []State{s, {Phase: claimed, Fingerprint: in.Fingerprint}}
		}
		return []State{s} // a retry of the winner changes nothing; another body was refused
	case Rejected:
		return []State{s}
	case Accepted:
		switch s.Phase {
		case unclaimed:
			return []State{{Phase: claimed, Fingerprint: in.Fingerprint, OpID: out.OpID}}
		case claimed:
			// The winner's body again, under the same operation; a fresh
			// 202 would be a second claim.
			if same && !out.Fresh && (s.OpID == "" || s.OpID == out.OpID) {
				return []State{{Phase: claimed, Fingerprint: s.Fingerprint, OpID: out.OpID}}
			}
		}
		return nil // never 202 once the answer is stored
	case Stored:
		switch s.Phase {
		case claimed:
			if same {
				return []State{{Phase: stored, Fingerprint: s.Fingerprint, OpID: s.OpID, Answer: out.Answer}}
			}
		case stored:
			if same && out.Answer == s.Answer {
				return []State{s}
			}
		}
		// unclaimed: an answer is stored only for a claimed key, and a
		// request that claims gets 202 (these clients never ask to wait).
		return nil
	case Conflict:
		if s.Phase != unclaimed && !same {
			return []State{s}
		}
		return nil
	}
	return nil
}

// Model is the contract as a porcupine model, partitioned by key.
func Model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range ops {
				k := op.Input.(Input).Key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() []any { return []any{State{}} },
		Step: func(state, input, output any) []any {
			next := step(state.(State), input.(Input), output.(Output))
			out := make([]any, len(next))
			for i, s := range next {
				out[i] = s
			}
			return out
		},
		Equal: func(a, b any) bool { return a.(State) == b.(State) },
		Hash: func(s any) uint64 {
			st := s.(State)
			h := fnv.New64a()
			fmt.Fprintf(h, "%d|%s|%s|%s", st.Phase, st.Fingerprint, st.OpID, st.Answer)
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(Input), output.(Output)
			s := fmt.Sprintf("POST %s body %s -> %s", in.Key, in.Fingerprint, out.Kind)
			switch out.Kind {
			case Accepted:
				fresh := "replayed"
				if out.Fresh {
					fresh = "fresh"
				}
				s += fmt.Sprintf(" %s (%s)", out.OpID, fresh)
			case Stored:
				s += fmt.Sprintf(" %d %s", out.Status, out.Answer)
			case Unknown, Rejected:
				if out.Status != 0 {
					s += fmt.Sprintf(" (%d)", out.Status)
				}
			}
			return s
		},
		DescribeState:             func(s any) string { return s.(State).String() },
		DescribeOperationMetadata: func(m any) string { s, _ := m.(string); return s },
	}
	return nm.ToModel()
}

// Verdict is the result of a check.
type Verdict struct {
	Result     porcupine.CheckResult
	Operations int
	Keys       int
	// Illegal names the keys whose history no order of the requests
	// explains.
	Illegal []string
	info    porcupine.LinearizationInfo
	bad     []porcupine.Operation // the illegal keys' operations
}

// Check checks the entries per key, within timeout (then the result may
// be porcupine.Unknown).
func Check(entries []Entry, timeout time.Duration) Verdict {
	ops := Operations(entries)
	m := Model()
	res, info := porcupine.CheckOperationsVerbose(m, ops, timeout)
	v := Verdict{Result: res, Operations: len(ops), Keys: len(m.Partition(ops)), info: info}
	if res != porcupine.Illegal {
		return v
	}
	// Name the keys: check each key's history alone.
	for _, part := range m.Partition(ops) {
		if porcupine.CheckOperationsTimeout(m, part, timeout) == porcupine.Illegal {
			v.Illegal = append(v.Illegal, part[0].Input.(Input).Key)
			v.bad = append(v.bad, part...)
		}
	}
	return v
}

// WriteVisualization writes porcupine's HTML visualisation of the
// illegal keys' histories (all of them when none is illegal) to path.
func (v Verdict) WriteVisualization(path string, timeout time.Duration) error {
	info := v.info
	if len(v.bad) > 0 {
		_, info = porcupine.CheckOperationsVerbose(Model(), v.bad, timeout)
	}
	return porcupine.VisualizePath(Model(), info, path)
}

// WriteJSON writes entries as JSON lines, for the record.
func WriteJSON(w interface{ Write([]byte) (int, error) }, entries []Entry) error {
	enc := json.NewEncoder(w)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}
