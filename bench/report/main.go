// Command report turns the JSON lines of a `make bench` run (loadgen
// results, pgbench and RSS lines written by scripts/bench.sh) into the
// markdown tables of BENCHMARKS.md: each idemgate figure next to its
// baseline, as medians over the interleaved rounds, with the issue's
// targets checked.
//
// Usage: report results.jsonl > results.md
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// line is one JSON line of the run, kept as decoded JSON.
type line map[string]any

// source names one figure: the label of the measure and the path of the
// value in its JSON line.
type source struct {
	Label string
	Path  string
	Scale float64 // multiplier (0 = 1)
}

// target is a goal from the issue: on the ratio, or on idemgate's value.
type target struct {
	OnValue bool
	Op      string // ">=", "<=" or "=="
	X       float64
}

func (t *target) String() string {
	if t == nil {
		return "—"
	}
	if t.OnValue {
		return fmt.Sprintf("%s %g", t.Op, t.X)
	}
	return fmt.Sprintf("%s %gx", t.Op, t.X)
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
	Baseline *source
	BaseName string
	Target   *target
	Agg      func([]float64) float64 // across rounds; median when nil
}

func rows() []row {
	s := func(label, path string) source { return source{Label: label, Path: path} }
	p := func(label, path string) *source { return &source{Label: label, Path: path} }
	ratio := func(op string, x float64) *target { return &target{Op: op, X: x} }
	value := func(op string, x float64) *target { return &target{OnValue: true, Op: op, X: x} }
	cpu := func(proc, base string) row {
		r := row{Measure: "CPU ms per command: " + proc, Idemgate: s("idemgate.e2e", "cpu.ms_per_cmd."+proc)}
		if base != "" {
			r.Baseline, r.BaseName = p("S.closed", "cpu.ms_per_cmd."+base), "S "+base
		}
		return r
	}
	return []row{
		{Measure: "sustained end-to-end /s (accepted AND completed, 32 conns, all roles)", Idemgate: s("idemgate.e2e", "completion.e2e_per_s"),
			Baseline: p("S.closed", "new_per_s"), BaseName: "S 201/s", Target: ratio(">=", 1)},
		{Measure: "accepted/s (202, 32 conns, all roles)", Idemgate: s("idemgate.e2e", "new_per_s"),
			Baseline: p("R1", "claims_per_s"), BaseName: "R single-row", Target: ratio(">=", 0.5)},
		{Measure: "accepted/s with project stopped (the backlog of the drain measure; information)", Idemgate: s("idemgate.backlog", "new_per_s"),
			Baseline: p("R1", "claims_per_s"), BaseName: "R single-row"},
		{Measure: "projector drain /s (backlog, then project started)", Idemgate: s("idemgate.drain", "completion.drain_per_s"),
			Baseline: p("R1", "claims_per_s"), BaseName: "R single-row", Target: ratio(">=", 1)},
		{Measure: "replays/s (32 conns, completed keys)", Idemgate: s("idemgate.replay", "replays_per_s"),
			Baseline: p("S.replay", "replays_per_s"), BaseName: "S replays/s", Target: ratio(">=", 1)},
		{Measure: "open loop at ½ S peak: p50 ms", Idemgate: s("idemgate.open", "latency_ms.p50"),
			Baseline: p("S.open", "latency_ms.p50"), BaseName: "S p50"},
		{Measure: "open loop at ½ S peak: p99 ms", Idemgate: s("idemgate.open", "latency_ms.p99"),
			Baseline: p("S.open", "latency_ms.p99"), BaseName: "S p99", Target: ratio("<=", 2)},
		{Measure: "open loop at ½ S peak: max ms", Idemgate: s("idemgate.open", "latency_ms.max"),
			Baseline: p("S.open", "latency_ms.max"), BaseName: "S max"},
		{Measure: "open loop at ½ S peak: 202->COMPLETED p50 ms", Idemgate: s("idemgate.open", "completion.accepted_to_completed_ms.p50")},
		{Measure: "open loop at ½ S peak: 202->COMPLETED p99 ms", Idemgate: s("idemgate.open", "completion.accepted_to_completed_ms.p99"),
			Target: value("<=", 50)},
		cpu("serve", "syncclaim"), cpu("project", ""), cpu("relay", ""), cpu("kafka", ""), cpu("postgres", "postgres"), cpu("total", "total"),
		{Measure: "serialization retries per accepted command (e2e)", Idemgate: s("idemgate.e2e", "retries.tx_retries_per_cmd"),
			Target: value("<=", 0.01)},
		{Measure: "transactions given up (all idemgate measures, all rounds)", Idemgate: s("idemgate.*", "retries.tx_gave_up"),
			Target: value("==", 0), Agg: sum},
		{Measure: "PostgreSQL xact_rollback per command (coarse cross-check)", Idemgate: s("idemgate.e2e", "pg.xact_rollback_per_cmd"),
			Baseline: p("S.closed", "pg.xact_rollback_per_cmd"), BaseName: "S"},
		{Measure: "PostgreSQL commits per command (coarse: transactions of all roles)", Idemgate: s("idemgate.e2e", "pg.xact_commit_per_cmd"),
			Baseline: p("S.closed", "pg.xact_commit_per_cmd"), BaseName: "S"},
		{Measure: "projector drain: PostgreSQL commits per command (coarse)", Idemgate: s("idemgate.drain", "pg.xact_commit_per_cmd")},
		{Measure: "serve peak RSS MB (VmHWM)", Idemgate: source{Label: "rss", Path: "serve_kb", Scale: 1.0 / 1024},
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
	var out []line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
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
			v, ok := lookup(l, src.Path)
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

func lookup(l line, path string) (float64, bool) {
	var cur any = map[string]any(l)
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		if cur, ok = m[k]; !ok {
			return 0, false
		}
	}
	v, ok := cur.(float64)
	return v, ok
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

// write prints the summary table, the baselines and the per-round values.
func write(w io.Writer, lines []line) {
	rds := rounds(lines)
	fmt.Fprintf(w, "Rounds: %d. Values are medians over the rounds; a ratio is the median of the per-round ratios (idemgate / baseline of the same round).\n\n", len(rds))
	fmt.Fprintln(w, "| measure | idemgate | baseline | ratio | target | met? |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|")
	type perRound struct {
		measure    string
		idem, base []float64
	}
	var detail []perRound
	for _, r := range rows() {
		agg := r.Agg
		if agg == nil {
			agg = median
		}
		idem := values(lines, r.Idemgate, rds)
		iv, ratio := agg(idem), math.NaN()
		var base []float64
		baseCell := "—"
		if r.Baseline != nil {
			base = values(lines, *r.Baseline, rds)
			bv := agg(base)
			ratios := make([]float64, len(rds))
			for i := range rds {
				ratios[i] = math.NaN()
				if base[i] != 0 {
					ratios[i] = idem[i] / base[i]
				}
			}
			ratio = median(ratios)
			baseCell = format(bv) + " (" + r.BaseName + ")"
		}
		ratioCell := "—"
		if r.Baseline != nil {
			ratioCell = format(ratio) + "x"
			if math.IsNaN(ratio) {
				ratioCell = "n/a"
			}
		}
		met := "—"
		if t := r.Target; t != nil {
			v := ratio
			if t.OnValue {
				v = iv
			}
			switch {
			case math.IsNaN(v):
				met = "n/a"
			case t.met(v):
				met = "yes"
			default:
				met = "**no**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.Measure, format(iv), baseCell, ratioCell, r.Target, met)
		detail = append(detail, perRound{r.Measure, idem, base})
	}

	fmt.Fprintln(w, "\nBaselines and settings (medians):")
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
		{"open-loop rate, requests/s (½ S peak of the round)", source{Label: "S.open", Path: "open.rate"}},
		{"open loop: idemgate requests sent > 10 ms late (client fell behind)", source{Label: "idemgate.open", Path: "open.late"}},
		{"open loop: S requests sent > 10 ms late", source{Label: "S.open", Path: "open.late"}},
		{"e2e: idemgate claims completed per measure", source{Label: "idemgate.e2e", Path: "completion.completed"}},
		{"drain: backlog size", source{Label: "idemgate.drain", Path: "completion.claims"}},
		{"drain: seconds from starting project to the last completion", source{Label: "idemgate.drain", Path: "completion.wait_s"}},
	} {
		agg := median
		if strings.HasSuffix(b.src.Label, "*") {
			agg = sum
		}
		fmt.Fprintf(w, "| %s | %s |\n", b.name, format(agg(values(lines, b.src, rds))))
	}

	fmt.Fprintln(w, "\nPer round (idemgate / baseline):")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| measure |")
	for _, rd := range rds {
		fmt.Fprintf(w, " round %d |", rd)
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
			if d.base != nil {
				cell += " / " + format(d.base[i])
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		fmt.Fprintln(w)
	}
}
