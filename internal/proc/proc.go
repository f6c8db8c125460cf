// Package proc reads Linux's /proc for the harnesses that stop and kill
// servers: which processes run, their parents and their groups.
package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Alive reports whether pid runs (a zombie does not: it holds no memory
// and no file, and the machine's init may never reap it).
func Alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	state, _, _, ok := ParseStat(b)
	return ok && running(state)
}

// Children lists the running processes whose parent is pid.
func Children(pid int) []int {
	var kids []int
	Each(func(p int, state string, ppid, _ int) {
		if ppid == pid && running(state) {
			kids = append(kids, p)
		}
	})
	return kids
}

// GroupAlive reports whether pgid, or a process of its group, runs.
func GroupAlive(pgid int) bool {
	found := false
	Each(func(pid int, state string, _, pgrp int) {
		found = found || (pgrp == pgid || pid == pgid) && running(state)
	})
	return found
}

func running(state string) bool { return state != "Z" && state != "X" }

// Each calls fn with each process's pid, state, parent and group.
func Each(fn func(pid int, state string, ppid, pgrp int)) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if state, ppid, pgrp, ok := ParseStat(b); ok {
			fn(pid, state, ppid, pgrp)
		}
	}
}

// ParseStat reads the state, parent and group of a /proc/<pid>/stat:
// "pid (comm) state ppid pgrp ...", where comm may hold spaces and
// parentheses.
func ParseStat(b []byte) (state string, ppid, pgrp int, ok bool) {
	i := strings.LastIndex(string(b), ") ")
	if i < 0 {
		return "", 0, 0, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 3 {
		return "", 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	return f[0], ppid, pgrp, err1 == nil && err2 == nil
}
