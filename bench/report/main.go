// Command report turns the JSON lines of a `make bench` run (loadgen
// results, pgbench, RSS and hog lines written by scripts/bench.sh) into
// the markdown tables of BENCHMARKS.md: each idemgate figure next to its
// baselines SO (bench/syncoutbox) and S or R, as medians over the quiet
// interleaved rounds, with the ratios of the contended round (a
// background CPU hog, marked by a "hog" line) beside them, and the
// issue's targets checked.
//
// Usage: report results.jsonl > results.md
package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/idemgate/idemgate/bench/internal/jsonl"
)

// line is one JSON line of the run, kept as decoded JSON.
type line = jsonl.Line

// source names one figure: the label of the measure and the path of the
// value in its JSON line.
type source struct {
	Label string
	Path  string
	Scale float64 // multiplier (0 = 1)
}

// target is a goal from the issue: on the ratio against SO or against
// the other baseline, or on idemgate's value.
type target struct {
	On string // "SO", "base" or "value"
	Op string // ">=", "<=" or "=="
	X  float64
}

func (t *target) String() string {
	switch {
	case t == nil:
		return "—"
	case t.On == "value":
		return fmt.Sprintf("%s %g", t.Op, t.X)
	case t.On == "SO":
		return fmt.Sprintf("%s %gx SO", t.Op, t.X)
	default:
		return fmt.Sprintf("%s %gx", t.Op, t.X)
	}
}

func (t *target) met(v float64) bool {
	switch t.Op {
	case ">=":
		return v >= t.X
	case "<=":
		return v <= t.X
	default:
		return v == t.X
	}
}

// row is one line of the table.
type row struct {
	Measure  string
	Idemgate source
	SO       *source // baseline SO, the synchronous claim with an outbox
	Baseline *source // baseline S or R
	BaseName string
	Target   *target
	Agg      func([]float64) float64 // across rounds; median when nil
}

func rows() []row {
	s := func(label, path string) source { return source{Label: label, Path: path} }
	p := func(label, path string) *source { return &source{Label: label, Path: path} }
	vsSO := func(op string, x float64) *target { return &target{On: "SO", Op: op, X: x} }
	vsBase := func(op string, x float64) *target { return &target{On: "base", Op: op, X: x} }
	value := func(op string, x float64) *target { return &target{On: "value", Op: op, X: x} }
	cpu := func(proc, so, base string, t *target) row {
		r := row{Measure: "CPU ms per command: " + proc, Idemgate: s("idemgate.e2e", "cpu.ms_per_cmd."+proc), Target: t}
		if so != "" {
			r.SO = p("SO.closed", "cpu.ms_per_cmd."+so)
		}
		if base != "" {
			r.Baseline, r.BaseName = p("S.closed", "cpu.ms_per_cmd."+base), "S "+base
		}
		return r
	}
	return []row{
		{Measure: "end-to-end /s up to the event on Kafka (32 conns, all roles; SO: its relay's event)", Idemgate: s("idemgate.e2e", "events.e2e_per_s"),
			SO: p("SO.closed", "events.e2e_per_s"), Baseline: p("S.closed", "new_per_s"), BaseName: "S 201/s", Target: vsSO(">=", 1)},
		{Measure: "sustained end-to-end /s (accepted AND completed, 32 conns, all roles; SO: 201/s)", Idemgate: s("idemgate.e2e", "completion.e2e_per_s"),
			SO: p("SO.closed", "new_per_s"), Baseline: p("S.closed", "new_per_s"), BaseName: "S 201/s", Target: vsBase(">=", 1)},
		{Measure: "accepted/s (202, 32 conns, all roles; SO: 201/s)", Idemgate: s("idemgate.e2e", "new_per_s"),
			SO: p("SO.closed", "new_per_s"), Baseline: p("R1", "claims_per_s"), BaseName: "R single-row", Target: vsBase(">=", 0.5)},
		{Measure: "accepted/s with project stopped (the backlog of the drain measure; information)", Idemgate: s("idemgate.backlog", "new_per_s"),
			Baseline: p("R1", "claims_per_s"), BaseName: "R single-row"},
		{Measure: "projector drain /s (backlog, then project started)", Idemgate: s("idemgate.drain", "completion.drain_per_s"),
			Baseline: p("R1", "claims_per_s"), BaseName: "R single-row", Target: vsBase(">=", 1)},
		{Measure: "replays/s (32 conns, completed keys)", Idemgate: s("idemgate.replay", "replays_per_s"),
			Baseline: p("S.replay", "replays_per_s"), BaseName: "S replays/s", Target: vsBase(">=", 1)},
		{Measure: "open loop: p50 ms of the HTTP answer (202; SO, S: 201)", Idemgate: s("idemgate.open", "latency_ms.p50"),
			SO: p("SO.open", "latency_ms.p50"), Baseline: p("S.open", "latency_ms.p50"), BaseName: "S p50", Target: vsSO("<=", 1.5)},
		{Measure: "open loop: p99 ms of the HTTP answer", Idemgate: s("idemgate.open", "latency_ms.p99"),
			SO: p("SO.open", "latency_ms.p99"), Baseline: p("S.open", "latency_ms.p99"), BaseName: "S p99", Target: vsSO("<=", 1.5)},
		{Measure: "open loop: max ms of the HTTP answer", Idemgate: s("idemgate.open", "latency_ms.max"),
			SO: p("SO.open", "latency_ms.max"), Baseline: p("S.open", "latency_ms.max"), BaseName: "S max"},
		{Measure: "open loop: 202->COMPLETED p50 ms", Idemgate: s("idemgate.open", "completion.accepted_to_completed_ms.p50")},
		{Measure: "open loop: 202->COMPLETED p99 ms", Idemgate: s("idemgate.open", "completion.accepted_to_completed_ms.p99"),
			Target: value("<=", 50)},
		{Measure: "open loop: accepted->event on Kafka p50 ms (idemgate: 202->result event; SO: claim->event)", Idemgate: s("idemgate.open", "events.accepted_to_event_ms.p50"),
			SO: p("SO.open", "events.accepted_to_event_ms.p50")},
		{Measure: "open loop: accepted->event on Kafka p99 ms", Idemgate: s("idemgate.open", "events.accepted_to_event_ms.p99"),
			SO: p("SO.open", "events.accepted_to_event_ms.p99"), Target: vsSO("<=", 2)},
		cpu("serve", "syncoutbox", "syncclaim", nil), cpu("project", "", "", nil), cpu("relay", "", "", nil), cpu("kafka", "kafka", "", nil),
		cpu("postgres", "postgres", "postgres", nil), cpu("total", "total", "total", vsSO("<=", 1)),
		{Measure: "serialization retries per accepted command (e2e)", Idemgate: s("idemgate.e2e", "retries.tx_retries_per_cmd"),
			SO: p("SO.closed", "retries.tx_retries_per_cmd"), Baseline: p("S.closed", "retries.tx_retries_per_cmd"), BaseName: "S", Target: value("<=", 0.01)},
		{Measure: "transactions given up (all measures, all rounds)", Idemgate: s("idemgate.*", "retries.tx_gave_up"),
			SO: p("SO.*", "retries.tx_gave_up"), Baseline: p("S.*", "retries.tx_gave_up"), BaseName: "S", Target: value("==", 0), Agg: sum},
		{Measure: "requests without an HTTP answer (all measures, all rounds)", Idemgate: s("idemgate.*", "errors"),
			SO: p("SO.*", "errors"), Baseline: p("S.*", "errors"), BaseName: "S", Target: value("==", 0), Agg: sum},
		{Measure: "PostgreSQL xact_rollback per command (coarse cross-check)", Idemgate: s("idemgate.e2e", "pg.xact_rollback_per_cmd"),
			SO: p("SO.closed", "pg.xact_rollback_per_cmd"), Baseline: p("S.closed", "pg.xact_rollback_per_cmd"), BaseName: "S"},
		{Measure: "PostgreSQL commits per command (coarse: transactions of all roles)", Idemgate: s("idemgate.e2e", "pg.xact_commit_per_cmd"),
			SO: p("SO.closed", "pg.xact_commit_per_cmd"), Baseline: p("S.closed", "pg.xact_commit_per_cmd"), BaseName: "S"},
		{Measure: "projector drain: PostgreSQL commits per command (coarse)", Idemgate: s("idemgate.drain", "pg.xact_commit_per_cmd")},
		{Measure: "serve peak RSS MB (VmHWM)", Idemgate: source{Label: "rss", Path: "serve_kb", Scale: 1.0 / 1024},
			SO:       &source{Label: "rss", Path: "syncoutbox_kb", Scale: 1.0 / 1024},
			Baseline: &source{Label: "rss", Path: "syncclaim_kb", Scale: 1.0 / 1024}, BaseName: "syncclaim", Target: value("<=", 200), Agg: maxOf},
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: report results.jsonl")
		os.Exit(2)
	}
	lines, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	write(os.Stdout, lines)
}

func read(path string) ([]line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lines, err := jsonl.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lines, nil
}

// values returns src's value in each round (NaN where it is missing).
// A label ending in ".*" matches every label with that prefix; their
// values in one round are added.
func values(lines []line, src source, rounds []int) []float64 {
	out := make([]float64, len(rounds))
	for i, rd := range rounds {
		out[i] = math.NaN()
		for _, l := range lines {
			if num(l["round"]) != float64(rd) || !matches(src.Label, l["label"]) {
				continue
			}
			v, ok := l.Number(src.Path)
			if !ok {
				continue
			}
			if src.Scale != 0 {
				v *= src.Scale
			}
			if math.IsNaN(out[i]) {
				out[i] = 0
			}
			out[i] += v
		}
	}
	return out
}

func matches(pattern string, label any) bool {
	s, _ := label.(string)
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(s, p)
	}
	return s == pattern
}

func num(v any) float64 { f, _ := v.(float64); return f }

func rounds(lines []line) []int {
	var out []int
	for _, l := range lines {
		if r := int(num(l["round"])); r > 0 && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func present(v []float64) []float64 {
	var out []float64
	for _, x := range v {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	return out
}

func median(v []float64) float64 {
	v = present(v)
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func sum(v []float64) float64 {
	v = present(v)
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

func maxOf(v []float64) float64 {
	v = present(v)
	if len(v) == 0 {
		return math.NaN()
	}
	return slices.Max(v)
}

func format(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return fmt.Sprintf("%.0f", v) // counts
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 0.1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

// contended returns the rounds run beside the background CPU hog (a
// "hog" line) and the others, the quiet ones.
func contended(lines []line, rds []int) (quiet, hogged []int) {
	for _, rd := range rds {
		hog := slices.ContainsFunc(lines, func(l line) bool { return l["label"] == "hog" && num(l["round"]) == float64(rd) })
		if hog {
			hogged = append(hogged, rd)
		} else {
			quiet = append(quiet, rd)
		}
	}
	return quiet, hogged
}

// ratios divides round by round (NaN where the base is 0 or missing).
func ratios(idem, base []float64) []float64 {
	out := make([]float64, len(idem))
	for i := range idem {
		out[i] = math.NaN()
		if base[i] != 0 {
			out[i] = idem[i] / base[i]
		}
	}
	return out
}

func ratioCell(src *source, r float64) string {
	switch {
	case src == nil:
		return "—"
	case math.IsNaN(r):
		return "n/a"
	default:
		return format(r) + "x"
	}
}

func verdict(t *target, v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case t.met(v):
		return "yes"
	default:
		return "**no**"
	}
}

// write prints the summary table, the baselines and the per-round values.
func write(w io.Writer, lines []line) {
	rds := rounds(lines)
	quiet, hogged := contended(lines, rds)
	fmt.Fprintf(w, "Rounds: %d quiet, %d contended (a background job burning half a core). Values are medians over the quiet rounds; "+
		"a ratio is the median of the per-round ratios (idemgate / baseline of the same round); "+
		"the contended columns give the same ratios in the contended round(s). Counts are summed over every round.\n\n", len(quiet), len(hogged))
	fmt.Fprintln(w, "| measure | idemgate | SO | vs SO | S or R | vs S or R | contended: vs SO | contended: vs S or R | target | met? |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
	type perRound struct {
		measure        string
		idem, so, base []float64
	}
	var detail []perRound
	for _, r := range rows() {
		agg, over := r.Agg, quiet
		if agg == nil {
			agg = median
		} else {
			over = rds // counts and peaks: every round
		}
		idem := values(lines, r.Idemgate, rds)
		iv := agg(values(lines, r.Idemgate, over))
		d := perRound{measure: r.Measure, idem: idem}
		soCell, baseCell := "—", "—"
		var soQ, soH, baseQ, baseH float64 = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		if r.SO != nil {
			d.so = values(lines, *r.SO, rds)
			soCell = format(agg(values(lines, *r.SO, over)))
			soQ = median(ratios(values(lines, r.Idemgate, quiet), values(lines, *r.SO, quiet)))
			soH = median(ratios(values(lines, r.Idemgate, hogged), values(lines, *r.SO, hogged)))
		}
		if r.Baseline != nil {
			d.base = values(lines, *r.Baseline, rds)
			baseCell = format(agg(values(lines, *r.Baseline, over))) + " (" + r.BaseName + ")"
			baseQ = median(ratios(values(lines, r.Idemgate, quiet), values(lines, *r.Baseline, quiet)))
			baseH = median(ratios(values(lines, r.Idemgate, hogged), values(lines, *r.Baseline, hogged)))
		}
		met := "—"
		if t := r.Target; t != nil {
			switch t.On {
			case "value":
				met = verdict(t, iv)
			case "SO":
				met = verdict(t, soQ)
				if len(hogged) > 0 {
					met += "; contended " + verdict(t, soH)
				}
			default:
				met = verdict(t, baseQ)
				if len(hogged) > 0 {
					met += "; contended " + verdict(t, baseH)
				}
			}
		}
		hogSO, hogBase := ratioCell(r.SO, soH), ratioCell(r.Baseline, baseH)
		if len(hogged) == 0 || r.Agg != nil {
			hogSO, hogBase = "—", "—"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Measure, format(iv), soCell, ratioCell(r.SO, soQ),
			baseCell, ratioCell(r.Baseline, baseQ), hogSO, hogBase, r.Target, met)
		detail = append(detail, d)
	}

	fmt.Fprintln(w, "\nBaselines and settings (medians over the quiet rounds; counts summed over every round):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| baseline | value |")
	fmt.Fprintln(w, "|---|---:|")
	for _, b := range []struct {
		name string
		src  source
	}{
		{"R: pgbench, claim INSERT, 1 per transaction, claims/s", source{Label: "R1", Path: "claims_per_s"}},
		{"R: pgbench, claim INSERT, 16 per transaction, claims/s", source{Label: "R16", Path: "claims_per_s"}},
		{"R: pgbench failed transactions (both scripts, all rounds)", source{Label: "R*", Path: "failed"}},
		{"S: syncclaim 201/s, 32 conns (its peak)", source{Label: "S.closed", Path: "new_per_s"}},
		{"S: syncclaim replays/s, 32 conns", source{Label: "S.replay", Path: "replays_per_s"}},
		{"SO: syncoutbox 201/s, 32 conns (its peak)", source{Label: "SO.closed", Path: "new_per_s"}},
		{"SO: events on Kafka per closed-loop measure", source{Label: "SO.closed", Path: "events.sent"}},
		{"open-loop rate, requests/s", source{Label: "S.open", Path: "open.rate"}},
		{"open loop: idemgate requests sent > 10 ms late (client fell behind)", source{Label: "idemgate.open", Path: "open.late"}},
		{"open loop: SO requests sent > 10 ms late", source{Label: "SO.open", Path: "open.late"}},
		{"open loop: S requests sent > 10 ms late", source{Label: "S.open", Path: "open.late"}},
		{"e2e: idemgate claims completed per measure", source{Label: "idemgate.e2e", Path: "completion.completed"}},
		{"e2e: idemgate result events on Kafka per measure", source{Label: "idemgate.e2e", Path: "events.sent"}},
		{"drain: backlog size", source{Label: "idemgate.drain", Path: "completion.claims"}},
		{"drain: seconds from starting project to the last completion", source{Label: "idemgate.drain", Path: "completion.wait_s"}},
	} {
		agg, over := median, quiet
		if strings.HasSuffix(b.src.Label, "*") {
			agg, over = sum, rds
		}
		fmt.Fprintf(w, "| %s | %s |\n", b.name, format(agg(values(lines, b.src, over))))
	}

	fmt.Fprintln(w, "\nPer round (idemgate / SO / S or R; — where a system has no such figure):")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| measure |")
	for _, rd := range rds {
		if slices.Contains(hogged, rd) {
			fmt.Fprintf(w, " round %d (contended) |", rd)
		} else {
			fmt.Fprintf(w, " round %d |", rd)
		}
	}
	fmt.Fprint(w, "\n|---|")
	for range rds {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, d := range detail {
		fmt.Fprintf(w, "| %s |", d.measure)
		for i := range rds {
			cell := format(d.idem[i])
			if d.so != nil || d.base != nil {
				for _, b := range [][]float64{d.so, d.base} {
					if b == nil {
						cell += " / —"
					} else {
						cell += " / " + format(b[i])
					}
				}
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		fmt.Fprintln(w)
	}
}
