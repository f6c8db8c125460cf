package proc

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestParseStat(t *testing.T) {
	for name, tc := range map[string]struct {
		stat       string
		state      string
		ppid, pgrp int
		ok         bool
	}{
		"OKPostgres":       {"24054 (postgres) S 24053 24054 24054 0 -1 4194368 ...", "S", 24053, 24054, true},
		"OKCommWithAParen": {"7 (a) b) Z 1 7 7 0", "Z", 1, 7, true},
		"ErrNoComm":        {"7 a S 1 7", "", 0, 0, false},
		"ErrTooShort":      {"7 (a) S 1", "", 0, 0, false},
		"ErrNotANumber":    {"7 (a) S x 7 7", "S", 0, 7, false},
	} {
		t.Run(name, func(t *testing.T) {
			state, ppid, pgrp, ok := ParseStat([]byte(tc.stat))
			if ok != tc.ok || ok && (state != tc.state || ppid != tc.ppid || pgrp != tc.pgrp) {
				t.Fatalf("ParseStat(%q) = %q %d %d %v, want %q %d %d %v", tc.stat, state, ppid, pgrp, ok, tc.state, tc.ppid, tc.pgrp, tc.ok)
			}
		})
	}
}

// A child this test starts is among Children, Alive while it runs and
// not once it has exited and been reaped.
func TestChildrenAndAlive(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if kids := Children(os.Getpid()); !slices.Contains(kids, pid) {
		t.Fatalf("Children(%d) = %v, want it to hold %d", os.Getpid(), kids, pid)
	}
	if !Alive(pid) {
		t.Fatalf("Alive(%d) = false while it runs", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if Alive(pid) {
		t.Fatalf("Alive(%d) = true after it was killed and reaped", pid)
	}
}
