// Command growth turns the JSON lines of `make bench-growth`
// (scripts/bench-growth.sh: loadgen results labelled e2e/<size>,
// open/<size> and replay/<size>, where size is the number of retained
// claims, and fill lines) into a markdown table of the figures at each
// size, medians over the rounds, and an SVG chart of them: CPU per
// command and latency against retained claims, on a log x axis.
//
// Usage: growth [-svg chart.svg] results.jsonl > results.md
//
// growth -sql NAME prints the hot-path statement NAME of store
// (store.HotPathSQL, e.g. claim), for the script's EXPLAIN to run the real
// statement, not a copy.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/idemgate/idemgate/bench/internal/jsonl"
	"github.com/idemgate/idemgate/store"
)

func main() {
	svgPath := flag.String("svg", "", "write the chart to this file")
	sqlName := flag.String("sql", "", "print store's hot-path statement of this name (store.HotPathSQL) and exit")
	flag.Parse()
	if *sqlName != "" {
		q, ok := store.HotPathSQL()[*sqlName]
		if !ok {
			fmt.Fprintf(os.Stderr, "growth: no hot-path statement %q\n", *sqlName)
			os.Exit(2)
		}
		fmt.Println(q)
		return
	}
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: growth [-svg chart.svg] results.jsonl")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "growth:", err)
		os.Exit(1)
	}
	lines, err := read(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "growth:", err)
		os.Exit(1)
	}
	figs := collect(lines)
	writeTable(os.Stdout, figs)
	if *svgPath != "" {
		if err := os.WriteFile(*svgPath, []byte(chart(figs)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "growth:", err)
			os.Exit(1)
		}
	}
}

// line is one JSON line of the run.
type line = jsonl.Line

func read(r io.Reader) ([]line, error) { return jsonl.Read(r) }

// measure is one figure of the table: the mode of the loadgen run
// (e2e, open or replay) and the path of the value in its line.
type measure struct {
	Name, Mode, Path string
}

var measures = []measure{
	{"end-to-end /s up to the event on Kafka (closed loop, 32 conns)", "e2e", "events.e2e_per_s"},
	{"closed loop: CPU ms per command, total (serve+project+relay+kafka+postgres)", "e2e", "cpu.ms_per_cmd.total"},
	{"closed loop: CPU ms per command, serve", "e2e", "cpu.ms_per_cmd.serve"},
	{"closed loop: CPU ms per command, project", "e2e", "cpu.ms_per_cmd.project"},
	{"closed loop: CPU ms per command, relay", "e2e", "cpu.ms_per_cmd.relay"},
	{"closed loop: CPU ms per command, kafka", "e2e", "cpu.ms_per_cmd.kafka"},
	{"closed loop: CPU ms per command, postgres", "e2e", "cpu.ms_per_cmd.postgres"},
	{"closed loop: serialization retries per command", "e2e", "retries.tx_retries_per_cmd"},
	{"open loop: 202 p50 ms", "open", "latency_ms.p50"},
	{"open loop: 202 p99 ms", "open", "latency_ms.p99"},
	{"open loop: 202->COMPLETED p50 ms", "open", "completion.accepted_to_completed_ms.p50"},
	{"open loop: 202->COMPLETED p99 ms", "open", "completion.accepted_to_completed_ms.p99"},
	{"open loop: 202->result event on Kafka p99 ms", "open", "events.accepted_to_event_ms.p99"},
	{"open loop: CPU ms per command, total", "open", "cpu.ms_per_cmd.total"},
	{"replays/s (32 conns)", "replay", "replays_per_s"},
	{"replays: p50 ms", "replay", "latency_ms.p50"},
	{"replays: p99 ms", "replay", "latency_ms.p99"},
	{"replays: CPU ms per replay, total", "replay", "cpu.ms_per_cmd.total"},
}

// figures are the medians over the rounds: Value[measure name][size].
type figures struct {
	Sizes  []int
	Value  map[string]map[int]float64
	Rounds map[int]int    // rounds of e2e measured at each size
	Fill   map[int]line   // the fill line of each size
	Load   map[int]string // load averages at each size's rounds
}

func collect(lines []line) figures {
	f := figures{Value: map[string]map[int]float64{}, Rounds: map[int]int{}, Fill: map[int]line{}, Load: map[int]string{}}
	vals := map[string]map[int][]float64{}
	sizes := map[int]bool{}
	for _, l := range lines {
		label, _ := l["label"].(string)
		switch label {
		case "fill":
			if s, ok := l.Number("size"); ok {
				f.Fill[int(s)] = l
			}
			continue
		case "loadavg":
			if s, ok := l.Number("size"); ok {
				la, _ := l["loadavg"].(string)
				f.Load[int(s)] = strings.TrimSpace(f.Load[int(s)] + "; " + la)
				f.Load[int(s)] = strings.TrimPrefix(f.Load[int(s)], "; ")
			}
			continue
		}
		mode, sz, ok := strings.Cut(label, "/")
		if !ok {
			continue
		}
		size, err := strconv.Atoi(sz)
		if err != nil {
			continue
		}
		sizes[size] = true
		if mode == "e2e" {
			f.Rounds[size]++
		}
		for _, m := range measures {
			if m.Mode != mode {
				continue
			}
			if v, ok := l.Number(m.Path); ok {
				if vals[m.Name] == nil {
					vals[m.Name] = map[int][]float64{}
				}
				vals[m.Name][size] = append(vals[m.Name][size], v)
			}
		}
	}
	for s := range sizes {
		f.Sizes = append(f.Sizes, s)
	}
	slices.Sort(f.Sizes)
	for name, bySize := range vals {
		f.Value[name] = map[int]float64{}
		for s, vs := range bySize {
			f.Value[name][s] = median(vs)
		}
	}
	return f
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// sizeName writes 10000 as 10k and 10000000 as 10M.
func sizeName(n int) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return strconv.Itoa(n/1e6) + "M"
	case n >= 1e3 && n%1e3 == 0:
		return strconv.Itoa(n/1e3) + "k"
	}
	return strconv.Itoa(n)
}

// num writes a figure with three significant digits.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func writeTable(w io.Writer, f figures) {
	if len(f.Sizes) == 0 {
		fmt.Fprintln(w, "No measures.")
		return
	}
	first, last := f.Sizes[0], f.Sizes[len(f.Sizes)-1]
	fmt.Fprint(w, "| measure (median of the rounds) |")
	for _, s := range f.Sizes {
		fmt.Fprintf(w, " %s |", sizeName(s))
	}
	fmt.Fprintf(w, " %s / %s |\n|---|", sizeName(last), sizeName(first))
	for range f.Sizes {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w, "---:|")
	for _, m := range measures {
		bySize, ok := f.Value[m.Name]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "| %s |", m.Name)
		for _, s := range f.Sizes {
			v, ok := bySize[s]
			if !ok {
				v = math.NaN()
			}
			fmt.Fprintf(w, " %s |", num(v))
		}
		a, okA := bySize[first]
		b, okB := bySize[last]
		ratio := "—"
		if okA && okB && a != 0 && len(f.Sizes) > 1 {
			ratio = strconv.FormatFloat(b/a, 'f', 2, 64) + "x"
		}
		fmt.Fprintf(w, " %s |\n", ratio)
	}
	fmt.Fprint(w, "| rounds |")
	for _, s := range f.Sizes {
		fmt.Fprintf(w, " %d |", f.Rounds[s])
	}
	fmt.Fprintln(w, " |")
	fmt.Fprintln(w)
	for _, s := range f.Sizes {
		if l, ok := f.Fill[s]; ok {
			secs, _ := l.Number("seconds")
			bytes, _ := l.Number("db_bytes")
			fmt.Fprintf(w, "- %s: filled in %.0f s, database %.0f MB; load average at the rounds (1, 5, 15 min): %s\n",
				sizeName(s), secs, bytes/(1<<20), f.Load[s])
		}
	}
}

// scale maps a value of [lo, hi] to a pixel of [p0, p1], linearly or on
// a log scale; values outside are clamped.
type scale struct {
	lo, hi, p0, p1 float64
	log            bool
}

func (s scale) at(v float64) float64 {
	lo, hi := s.lo, s.hi
	if s.log {
		v, lo, hi = math.Log10(max(v, s.lo)), math.Log10(lo), math.Log10(hi)
	}
	t := (v - lo) / (hi - lo)
	t = min(max(t, 0), 1)
	return s.p0 + t*(s.p1-s.p0)
}

// series is one line of a panel.
type series struct {
	Name, Color string
	Measure     string
	Dash        bool
}

// panel is one plot of the chart.
type panel struct {
	Title  string
	YLabel string
	YLog   bool
	Series []series
}

var panels = []panel{
	{"CPU per command (ms, all five processes)", "ms", false, []series{
		{"closed loop", "#1f77b4", "closed loop: CPU ms per command, total (serve+project+relay+kafka+postgres)", false},
		{"open loop 500/s", "#ff7f0e", "open loop: CPU ms per command, total", false},
		{"postgres (closed)", "#2ca02c", "closed loop: CPU ms per command, postgres", true},
		{"replay", "#9467bd", "replays: CPU ms per replay, total", true},
	}},
	{"Latency at 500/s (ms, log)", "ms", true, []series{
		{"202 p50", "#1f77b4", "open loop: 202 p50 ms", false},
		{"202 p99", "#1f77b4", "open loop: 202 p99 ms", true},
		{"202→completed p50", "#d62728", "open loop: 202->COMPLETED p50 ms", false},
		{"202→completed p99", "#d62728", "open loop: 202->COMPLETED p99 ms", true},
	}},
}

const (
	panelW, panelH = 420.0, 300.0
	marginL        = 60.0
	marginT        = 40.0
	plotW, plotH   = 320.0, 190.0
)

// xScale is the log scale of retained claims over the sizes measured:
// from the decade at or below the smallest to the one at or above the
// largest.
func xScale(sizes []int, p0, p1 float64) scale {
	lo := math.Pow(10, math.Floor(math.Log10(float64(sizes[0]))))
	hi := math.Pow(10, math.Ceil(math.Log10(float64(sizes[len(sizes)-1]))))
	if hi <= lo {
		hi = lo * 10
	}
	return scale{lo: lo, hi: hi, p0: p0, p1: p1, log: true}
}

// yScale spans 0 (linear) or the decade below the smallest value (log)
// to a round value above the largest.
func yScale(vals []float64, logY bool, p0, p1 float64) scale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if math.IsNaN(v) || (logY && v <= 0) {
			continue
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	if logY {
		return scale{lo: math.Pow(10, math.Floor(math.Log10(lo))), hi: math.Pow(10, math.Ceil(math.Log10(hi))), p0: p0, p1: p1, log: true}
	}
	step := math.Pow(10, math.Floor(math.Log10(hi)))
	top := math.Ceil(hi*1.1/step) * step
	if top <= 0 {
		top = 1
	}
	return scale{lo: 0, hi: top, p0: p0, p1: p1}
}

// ticks are the values of an axis's marks: each decade on a log scale,
// five steps on a linear one.
func (s scale) ticks() []float64 {
	var out []float64
	if s.log {
		for v := s.lo; v <= s.hi*1.0001; v *= 10 {
			out = append(out, v)
		}
		return out
	}
	for i := 0; i <= 5; i++ {
		out = append(out, s.lo+float64(i)*(s.hi-s.lo)/5)
	}
	return out
}

func chart(f figures) string {
	var b strings.Builder
	w := panelW * float64(len(panels))
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n",
		w, panelH, w, panelH)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/>`+"\n", w, panelH)
	if len(f.Sizes) == 0 {
		b.WriteString("</svg>\n")
		return b.String()
	}
	for i, p := range panels {
		ox := float64(i) * panelW
		x0, y0 := ox+marginL, marginT+plotH
		xs := xScale(f.Sizes, x0, x0+plotW)
		var all []float64
		for _, s := range p.Series {
			for _, v := range f.Value[s.Measure] {
				all = append(all, v)
			}
		}
		ys := yScale(all, p.YLog, y0, marginT)
		fmt.Fprintf(&b, `<text x="%.1f" y="20" font-size="13" font-weight="bold">%s</text>`+"\n", ox+marginL, esc(p.Title))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", x0, marginT, plotW, plotH)
		for _, t := range xs.ticks() {
			x := xs.at(t)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, marginT, x, y0)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, y0+14, sizeName(int(t)))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">retained claims (log)</text>`+"\n", x0+plotW/2, y0+30)
		for _, t := range ys.ticks() {
			y := ys.at(t)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+plotW, y)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-4, y+4, num(t))
		}
		for j, s := range p.Series {
			var pts []string
			for _, size := range f.Sizes {
				v, ok := f.Value[s.Measure][size]
				if !ok || math.IsNaN(v) {
					continue
				}
				x, y := xs.at(float64(size)), ys.at(v)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s at %s: %s</title></circle>`+"\n",
					x, y, s.Color, esc(s.Name), sizeName(size), num(v))
			}
			dash := ""
			if s.Dash {
				dash = ` stroke-dasharray="5,3"`
			}
			if len(pts) > 1 {
				fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.Color, dash)
			}
			ly := y0 + 46 + float64(j/2)*14
			lx := x0 + float64(j%2)*plotW/2
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly-4, lx+18, ly-4, s.Color, dash)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+22, ly, esc(s.Name))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func esc(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}
