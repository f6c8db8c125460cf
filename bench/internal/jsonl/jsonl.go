// Package jsonl reads the JSON lines of the bench scripts' runs
// (bench/loadgen's results and the scripts' own lines), for bench/report
// and bench/growth.
package jsonl

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Line is one JSON line of a run, kept as decoded JSON.
type Line map[string]any

// Read reads one JSON object a line (up to 1 MiB), skipping blank lines;
// an error names the line's number.
func Read(r io.Reader) ([]Line, error) {
	var out []Line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// Number reads a number at a dotted path ("cpu.ms_per_cmd.total").
func (l Line) Number(path string) (float64, bool) {
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
