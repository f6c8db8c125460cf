package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// statTimes reads a process's own CPU time and that of its reaped
// children, in seconds, and its parent pid.
func statTimes(pid int) (own, reaped float64, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name (field 2) may hold spaces: fields start after ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v }
	ppid, _ = strconv.Atoi(f[1])
	return (num(11) + num(12)) / clockTicks, (num(13) + num(14)) / clockTicks, ppid, nil
}

// cpuSeconds is p's CPU time so far. With Children, its live children's
// time is added, and its reaped children's: a backend that exits during a
// measure moves from the first sum to the second, so nothing is lost.
func cpuSeconds(p proc) (float64, error) {
	own, reaped, _, err := statTimes(p.PID)
	if err != nil {
		return 0, fmt.Errorf("%s (pid %d): %w", p.Name, p.PID, err)
	}
	if !p.Children {
		return own, nil
	}
	total := own + reaped
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, _, ppid, err := statTimes(pid); err == nil && ppid == p.PID {
			total += c
		}
	}
	return total, nil
}

// cpuSnapshot reads every watched process, plus the load generator itself.
func cpuSnapshot(ps []proc) (map[string]float64, error) {
	out := map[string]float64{}
	for _, p := range ps {
		s, err := cpuSeconds(p)
		if err != nil {
			return nil, err
		}
		out[p.Name] = s
	}
	if own, _, _, err := statTimes(os.Getpid()); err == nil {
		out["loadgen"] = own
	}
	return out, nil
}

// cpuDelta turns two snapshots into CPU seconds and milliseconds per
// command, with a "total" of the watched processes (not the load generator).
func cpuDelta(before, after map[string]float64, commands int) *CPUStats {
	st := &CPUStats{Seconds: map[string]float64{}, MsPerCommand: map[string]float64{}}
	for name, a := range after {
		st.Seconds[name] = a - before[name]
		if name != "loadgen" {
			st.Seconds["total"] += a - before[name]
		}
	}
	if commands > 0 {
		for name, s := range st.Seconds {
			st.MsPerCommand[name] = s * 1000 / float64(commands)
		}
	}
	return st
}

// retryMetrics are the counters summed over every label and endpoint.
var retryMetrics = []string{"idemgate_sql_tx_retries_total", "idemgate_sql_tx_gave_up_total"}

// scraped maps each counter read to the one of retryMetrics it is summed
// into: idemgate's own, and the same counters as the synchronous
// baselines name them (bench/internal/syncapi).
var scraped = map[string]string{
	retryMetrics[0]:            retryMetrics[0],
	retryMetrics[1]:            retryMetrics[1],
	"syncapi_tx_retries_total": retryMetrics[0],
	"syncapi_tx_gave_up_total": retryMetrics[1],
}

// scrape sums the retry counters over every target. found is false when
// no target exports them (the metrics do not exist yet).
func scrape(ctx context.Context, targets []target) (sums map[string]float64, found bool, err error) {
	sums = map[string]float64{}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	for _, t := range targets {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
		if err != nil {
			return nil, false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, false, fmt.Errorf("scrape %s: %w", t.Name, err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			for name, m := range scraped {
				rest, ok := strings.CutPrefix(line, name)
				if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
					continue
				}
				f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
				if len(f) == 0 {
					continue
				}
				if v, err := strconv.ParseFloat(f[0], 64); err == nil {
					sums[m] += v
					found = true
				}
			}
		}
		resp.Body.Close()
		if err := sc.Err(); err != nil {
			return nil, false, fmt.Errorf("scrape %s: %w", t.Name, err)
		}
	}
	return sums, found, nil
}
