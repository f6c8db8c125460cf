package chaos

// The history check: every POST under a key that the clients sent, with
// its call and return times and what came back, checked per key with
// porcupine against the model of the contract (chaos/history). On
// failure the illegal keys are named, and porcupine's picture of their
// histories (history.html) and the whole history (history.jsonl) are
// written to the run's log folder.

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/idemgate/idemgate/chaos/history"
)

// historyTally is what the summary reports of the history.
type historyTally struct {
	verdict        porcupine.CheckResult
	requests, keys int
	kinds          map[string]int // requests by what came back
	took           time.Duration
}

// historyTimeout bounds porcupine's search; each key's history is small
// (a few to a few dozen requests), so it takes seconds.
const historyTimeout = 2 * time.Minute

func (r *run) checkHistory() historyTally {
	start := time.Now()
	entries := r.hist.Entries()
	v := history.Check(entries, historyTimeout)
	tl := historyTally{verdict: v.Result, requests: v.Operations, keys: v.Keys, kinds: map[string]int{}, took: time.Since(start)}
	for _, e := range entries {
		tl.kinds[e.Kind.String()]++
	}
	r.logf("history: %s, %d requests over %d keys, checked in %v", v.Result, v.Operations, v.Keys, tl.took.Round(time.Millisecond))
	if v.Result == porcupine.Ok {
		return tl
	}
	what := "history: not linearizable"
	if v.Result == porcupine.Unknown {
		what = "history: porcupine gave no verdict"
	}
	artifacts := r.writeHistory(v, entries)
	keys := v.Illegal
	if len(keys) > 15 {
		keys = append(keys[:15:15], "...")
	}
	r.fail(what, "%d of %d keys: %s; %s", len(v.Illegal), v.Keys, strings.Join(keys, ", "), artifacts)
	return tl
}

// writeHistory writes the illegal keys' picture and the whole history to
// the log folder, and says where.
func (r *run) writeHistory(v history.Verdict, entries []history.Entry) string {
	html := filepath.Join(r.logDir, "history.html")
	jsonl := filepath.Join(r.logDir, "history.jsonl")
	var notes []string
	if err := v.WriteVisualization(html, historyTimeout); err != nil {
		notes = append(notes, "visualisation: "+err.Error())
	} else {
		notes = append(notes, "picture of their histories: "+html)
	}
	f, err := os.Create(jsonl)
	if err == nil {
		err = history.WriteJSON(f, entries)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		notes = append(notes, "history: "+err.Error())
	} else {
		notes = append(notes, "every request: "+jsonl)
	}
	return strings.Join(notes, "; ")
}
