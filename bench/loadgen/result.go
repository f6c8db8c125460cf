package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Result is one run, printed as one JSON line. Rates are per second of
// the load window; latencies are in milliseconds.
type Result struct {
	Label     string         `json:"label,omitempty"`
	Round     int            `json:"round"`
	Mode      string         `json:"mode"`
	Prefix    string         `json:"prefix"`
	Conns     int            `json:"conns"`
	DurationS float64        `json:"duration_s"`
	Requests  int            `json:"requests"`
	Errors    int            `json:"errors"`
	Status    map[string]int `json:"status"`
	New       int            `json:"new"`      // 201/202 not replayed: commands this run created
	Replayed  int            `json:"replayed"` // answers with Idempotent-Replayed: true
	RPS       float64        `json:"rps"`
	NewPerS   float64        `json:"new_per_s"`
	ReplayPS  float64        `json:"replays_per_s"`
	Latency   *Percentiles   `json:"latency_ms,omitempty"`
	Open      *OpenStats     `json:"open,omitempty"`
	Done      *Completion    `json:"completion,omitempty"`
	Events    *Events        `json:"events,omitempty"`
	Commands  int            `json:"commands"` // the denominator of the per-command figures
	CPU       *CPUStats      `json:"cpu,omitempty"`
	Retries   *Retries       `json:"retries,omitempty"`
	PG        *PGStats       `json:"pg,omitempty"`
	Warnings  []string       `json:"warnings,omitempty"`
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// OpenStats says how faithfully the open loop kept its schedule.
type OpenStats struct {
	Rate       float64 `json:"rate"`
	Late       int     `json:"late"` // sent more than LateMs after their slot
	LateMs     float64 `json:"late_threshold_ms"`
	MaxDelayMs float64 `json:"max_send_delay_ms"`
}

// Completion is what the database says about the run's claims.
type Completion struct {
	Claims    int     `json:"claims"`
	Completed int     `json:"completed"`
	TimedOut  bool    `json:"timed_out"`
	WaitS     float64 `json:"wait_s"` // from the end of the load (wait mode: its start) to the last completion seen
	// E2EPerS is completed claims per second from the load's start to the
	// last completion: accepted AND completed per second.
	E2EPerS float64 `json:"e2e_per_s,omitempty"`
	// DrainPerS is completions per second between the first and the last.
	DrainPerS float64      `json:"drain_per_s"`
	Latency   *Percentiles `json:"accepted_to_completed_ms,omitempty"`
	Unsent    int          `json:"outbox_unsent"` // outbox rows of the run not yet relayed when the wait ended
}

// Events are the run's events on Kafka, as the outbox says (sent_at).
type Events struct {
	Sent int `json:"sent"`
	// E2EPerS is events on Kafka per second from the load's start to the
	// last one: accepted AND published per second.
	E2EPerS float64      `json:"e2e_per_s,omitempty"`
	Latency *Percentiles `json:"accepted_to_event_ms,omitempty"`
}

// CPUStats are CPU seconds by process over the measure, and per command.
type CPUStats struct {
	Seconds      map[string]float64 `json:"s"`
	MsPerCommand map[string]float64 `json:"ms_per_cmd"`
}

// Retries are the transaction retry counters scraped from /metrics.
type Retries struct {
	TxRetries float64 `json:"tx_retries"`
	TxGaveUp  float64 `json:"tx_gave_up"`
	PerCmd    float64 `json:"tx_retries_per_cmd"`
}

// PGStats are pg_stat_database deltas over the measure (a coarse check:
// the server publishes them with a delay of up to a few seconds).
type PGStats struct {
	Commits      int64   `json:"xact_commit"`
	Rollbacks    int64   `json:"xact_rollback"`
	RollbackPerC float64 `json:"xact_rollback_per_cmd"`
	CommitPerC   float64 `json:"xact_commit_per_cmd"`
}

// summarise fills the request counters of r from the outcomes of a load
// window of length d.
func summarise(r *Result, outs []outcome, d time.Duration) {
	r.DurationS = d.Seconds()
	r.Requests = len(outs)
	r.Status = map[string]int{}
	lat := make([]time.Duration, 0, len(outs))
	for _, o := range outs {
		if o.Status == 0 {
			r.Errors++
			r.Status["error"]++
		} else {
			r.Status[strconv.Itoa(o.Status)]++
		}
		switch {
		case o.Replayed:
			r.Replayed++
		case o.Status == 201 || o.Status == 202:
			r.New++
		}
		lat = append(lat, o.Latency)
	}
	r.RPS = float64(r.Requests) / d.Seconds()
	r.NewPerS = float64(r.New) / d.Seconds()
	r.ReplayPS = float64(r.Replayed) / d.Seconds()
	r.Latency = percentiles(lat)
}

func percentiles(d []time.Duration) *Percentiles {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(q*float64(len(d))+0.5) - 1
		return ms(d[min(max(i, 0), len(d)-1)])
	}
	return &Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(d[len(d)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// human writes a short summary of r for people.
func human(w io.Writer, r Result) {
	if r.Mode == "wait" {
		fmt.Fprintf(w, "loadgen %s wait: %.1fs\n", r.Label, r.DurationS)
	} else {
		fmt.Fprintf(w, "loadgen %s %s: %d requests in %.1fs (%.0f/s); new %.0f/s, replayed %.0f/s; status",
			r.Label, r.Mode, r.Requests, r.DurationS, r.RPS, r.NewPerS, r.ReplayPS)
		for _, k := range sortedKeys(r.Status) {
			fmt.Fprintf(w, " %s=%d", k, r.Status[k])
		}
		fmt.Fprintln(w)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", l.P50, l.P90, l.P99, l.Max)
	}
	if o := r.Open; o != nil {
		fmt.Fprintf(w, "  open loop at %.0f/s: %d late (> %.0f ms after their slot), max send delay %.1f ms\n",
			o.Rate, o.Late, o.LateMs, o.MaxDelayMs)
	}
	if c := r.Done; c != nil {
		fmt.Fprintf(w, "  completion: %d/%d claims COMPLETED (timed out: %v), the last %.1fs after the load; ", c.Completed, c.Claims, c.TimedOut, c.WaitS)
		if c.E2EPerS > 0 {
			fmt.Fprintf(w, "accepted and completed %.0f/s, ", c.E2EPerS)
		}
		fmt.Fprintf(w, "drain %.0f/s", c.DrainPerS)
		if l := c.Latency; l != nil {
			fmt.Fprintf(w, "; 202->COMPLETED ms p50 %.1f p99 %.1f max %.1f", l.P50, l.P99, l.Max)
		}
		fmt.Fprintln(w)
	}
	if e := r.Events; e != nil {
		fmt.Fprintf(w, "  events on Kafka: %d, accepted and published %.0f/s", e.Sent, e.E2EPerS)
		if l := e.Latency; l != nil {
			fmt.Fprintf(w, "; accepted->event ms p50 %.1f p99 %.1f max %.1f", l.P50, l.P99, l.Max)
		}
		fmt.Fprintln(w)
	}
	if c := r.CPU; c != nil && len(c.MsPerCommand) > 0 {
		var parts []string
		for _, k := range sortedKeys(c.MsPerCommand) {
			parts = append(parts, fmt.Sprintf("%s %.3f", k, c.MsPerCommand[k]))
		}
		fmt.Fprintf(w, "  CPU ms per command (%d): %s\n", r.Commands, strings.Join(parts, ", "))
	}
	if t := r.Retries; t != nil {
		fmt.Fprintf(w, "  tx retries %.0f (%.4f per command), gave up %.0f\n", t.TxRetries, t.PerCmd, t.TxGaveUp)
	}
	if p := r.PG; p != nil {
		fmt.Fprintf(w, "  pg_stat_database: %d commits (%.2f per command), %d rollbacks (%.4f per command)\n",
			p.Commits, p.CommitPerC, p.Rollbacks, p.RollbackPerC)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", s)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
