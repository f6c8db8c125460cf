package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTableUsesMediansAndPerRoundRatios(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	data := `{"label":"idemgate.replay","round":1,"replays_per_s":100}
{"label":"S.replay","round":1,"replays_per_s":200}
{"label":"idemgate.replay","round":2,"replays_per_s":300}
{"label":"S.replay","round":2,"replays_per_s":100}
{"label":"idemgate.replay","round":3,"replays_per_s":250}
{"label":"S.replay","round":3,"replays_per_s":200}
{"label":"rss","round":1,"serve_kb":102400,"syncclaim_kb":10240}
{"label":"rss","round":3,"serve_kb":307200,"syncclaim_kb":10240}
{"label":"idemgate.e2e","round":1,"retries":{"tx_gave_up":0}}
{"label":"idemgate.open","round":2,"retries":{"tx_gave_up":1}}
`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err := read(path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	write(&out, lines)
	table := out.String()
	for _, want := range []string{
		// medians 250 and 200; per-round ratios 0.5, 3, 1.25: median 1.25
		"| replays/s (32 conns, completed keys) | 250 | 200 (S replays/s) | 1.25x | >= 1x | yes |",
		// the peak over the rounds, against 200 MB
		"| serve peak RSS MB (VmHWM) | 300 | 10 (syncclaim) | 20x | <= 200 | **no** |",
		// summed over measures and rounds: one gave up
		"| transactions given up (all idemgate measures, all rounds) | 1 | — | — | == 0 | **no** |",
		// no such figure in the run
		"| serialization retries per accepted command (e2e) | n/a | — | — | <= 0.01 | n/a |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
