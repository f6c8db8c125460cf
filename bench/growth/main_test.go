package main

import (
	"encoding/xml"
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestScaleMapsValuesToPixels(t *testing.T) {
	lin := scale{lo: 0, hi: 2, p0: 230, p1: 40} // y axis: up is smaller pixels
	for v, want := range map[float64]float64{0: 230, 1: 135, 2: 40, -1: 230, 5: 40} {
		if got := lin.at(v); !near(got, want) {
			t.Errorf("linear at(%g) = %g, want %g", v, got, want)
		}
	}
	lg := scale{lo: 1e3, hi: 1e7, p0: 60, p1: 380, log: true}
	for v, want := range map[float64]float64{1e3: 60, 1e4: 140, 1e5: 220, 1e6: 300, 1e7: 380, 1: 60} {
		if got := lg.at(v); !near(got, want) {
			t.Errorf("log at(%g) = %g, want %g", v, got, want)
		}
	}
}

func TestAxesSpanTheDecadesOfTheData(t *testing.T) {
	xs := xScale([]int{10000, 1000000, 10000000}, 0, 300)
	if xs.lo != 1e4 || xs.hi != 1e7 || !xs.log {
		t.Errorf("x scale %+v, want log 1e4..1e7", xs)
	}
	if got := xs.ticks(); len(got) != 4 || got[0] != 1e4 || !near(got[3], 1e7) {
		t.Errorf("x ticks %v, want the 4 decades 10k..10M", got)
	}
	ys := yScale([]float64{0.7, 1.3, math.NaN()}, false, 200, 0)
	if ys.lo != 0 || ys.hi != 2 {
		t.Errorf("linear y scale %+v, want 0..2", ys)
	}
	yl := yScale([]float64{3.2, 95}, true, 200, 0)
	if yl.lo != 1 || yl.hi != 100 {
		t.Errorf("log y scale %+v, want 1..100", yl)
	}
}

const results = `{"label":"fill","size":10000,"seconds":3,"db_bytes":35651584}
{"label":"loadavg","size":10000,"round":1,"loadavg":"4.0 5.0 6.0"}
{"label":"e2e/10000","round":1,"events":{"e2e_per_s":1000},"cpu":{"ms_per_cmd":{"total":0.8,"postgres":0.3}}}
{"label":"e2e/10000","round":2,"events":{"e2e_per_s":2000},"cpu":{"ms_per_cmd":{"total":1.0,"postgres":0.3}}}
{"label":"e2e/10000","round":3,"events":{"e2e_per_s":1600},"cpu":{"ms_per_cmd":{"total":0.9,"postgres":0.3}}}
{"label":"open/10000","round":1,"latency_ms":{"p50":4,"p99":90},"completion":{"accepted_to_completed_ms":{"p50":60,"p99":300}}}
{"label":"e2e/1000000","round":1,"events":{"e2e_per_s":1500},"cpu":{"ms_per_cmd":{"total":1.2,"postgres":0.5}}}
{"label":"open/1000000","round":1,"latency_ms":{"p50":5,"p99":100},"completion":{"accepted_to_completed_ms":{"p50":70,"p99":310}}}
`

func TestTableGivesMediansPerSizeAndTheRatio(t *testing.T) {
	lines, err := read(strings.NewReader(results))
	if err != nil {
		t.Fatal(err)
	}
	f := collect(lines)
	if len(f.Sizes) != 2 || f.Sizes[0] != 10000 || f.Sizes[1] != 1000000 {
		t.Fatalf("sizes %v", f.Sizes)
	}
	if got := f.Value["end-to-end /s up to the event on Kafka (closed loop, 32 conns)"][10000]; got != 1600 {
		t.Errorf("median e2e at 10k = %g, want 1600", got)
	}
	var out strings.Builder
	writeTable(&out, f)
	for _, want := range []string{
		"| measure (median of the rounds) | 10k | 1M | 1M / 10k |",
		"| closed loop: CPU ms per command, total (serve+project+relay+kafka+postgres) | 0.9 | 1.2 | 1.33x |",
		"| open loop: 202 p99 ms | 90 | 100 | 1.11x |",
		"| rounds | 3 | 1 | |",
		"- 10k: filled in 3 s, database 34 MB; load average at the rounds (1, 5, 15 min): 4.0 5.0 6.0",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestChartPlacesEachPointOnItsScales(t *testing.T) {
	lines, err := read(strings.NewReader(results))
	if err != nil {
		t.Fatal(err)
	}
	svg := chart(collect(lines))
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("not well-formed XML: %v", err)
	}
	// The CPU panel (the first): x from 10k to 1M on [60, 380], y linear
	// from 0 to 2 (the largest value 1.2, +10%, rounded up to a whole
	// unit) on [230, 40]. The closed loop's total at 1M, 1.2 ms: x 380,
	// y 230 - 1.2/2*190 = 116.
	if !strings.Contains(svg, `<circle cx="380.0" cy="116.0" r="3" fill="#1f77b4"><title>closed loop at 1M: 1.2</title>`) {
		t.Errorf("the closed loop's point at 1M is not at (380, 116):\n%s", svg)
	}
	// At 10k, 0.9 ms: x 60, y 230 - 0.9/2*190 = 144.5.
	if !strings.Contains(svg, `<circle cx="60.0" cy="144.5" r="3"`) {
		t.Errorf("the closed loop's point at 10k is not at (60, 144.5):\n%s", svg)
	}
	// The latency panel starts at x 420: log y from 1 to 1000; the 202 p99
	// at 1M, 100 ms: y 230 - 2/3*190 = 103.3.
	if !strings.Contains(svg, `<circle cx="800.0" cy="103.3" r="3" fill="#1f77b4"><title>202 p99 at 1M: 100</title>`) {
		t.Errorf("the 202 p99 at 1M is not at (800, 103.3):\n%s", svg)
	}
}
