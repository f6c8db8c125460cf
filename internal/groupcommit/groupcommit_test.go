package groupcommit

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// While the one slot is busy, the items that arrive wait, and the next
// group takes them in their order, up to First's bound; every item is run
// once.
func TestItemsWaitingForASlotShareTheNextGroup(t *testing.T) {
	var mu sync.Mutex
	var groups [][]int
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{}, 16)
	q := New(1, First[int](3), func(g []int) {
		mu.Lock()
		groups = append(groups, g)
		first := len(groups) == 1
		mu.Unlock()
		if first {
			close(entered)
			<-release
		}
		for range g {
			done <- struct{}{}
		}
	})
	q.Add(0)
	<-entered
	for i := 1; i <= 5; i++ {
		q.Add(i)
	}
	if n := q.Len(); n != 5 {
		t.Fatalf("%d items wait, want 5", n)
	}
	close(release)
	for range 6 {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("not every item was run")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := [][]int{{0}, {1, 2, 3}, {4, 5}}
	if !slices.EqualFunc(groups, want, slices.Equal) {
		t.Fatalf("groups %v, want %v", groups, want)
	}
	if n := q.Len(); n != 0 {
		t.Fatalf("%d items still wait", n)
	}
}

// An item removed while it waits is never run; one already taken into a
// group cannot be removed.
func TestRemove(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	ran := make(chan []int, 4)
	q := New(1, First[int](10), func(g []int) {
		if g[0] == 0 {
			close(entered)
			<-release
		}
		ran <- g
	})
	q.Add(0)
	<-entered
	q.Add(1)
	q.Add(2)
	if !q.Remove(1) {
		t.Fatal("Remove(1) = false while it waits")
	}
	if q.Remove(0) {
		t.Fatal("Remove(0) = true while its group runs")
	}
	close(release)
	for _, want := range [][]int{{0}, {2}} {
		select {
		case g := <-ran:
			if !slices.Equal(g, want) {
				t.Fatalf("group %v, want %v", g, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("group %v never ran", want)
		}
	}
}

// recorder runs groups by recording them, and hands each group over.
func recorder() (run func([]int), groups chan []int) {
	groups = make(chan []int, 16)
	return func(g []int) { groups <- g }, groups
}

func nextGroup(t *testing.T, groups chan []int) []int {
	t.Helper()
	select {
	case g := <-groups:
		return g
	case <-time.After(30 * time.Second):
		t.Fatal("no group ran")
		return nil
	}
}

// A gathering queue's free slots wait for company: three items added one
// after the other, with both slots free, run as one group (without the
// gather the first two would each take a slot alone). The wait is an hour,
// so the group can only have gone because it was full.
func TestGatherWaitsForCompanyUntilFull(t *testing.T) {
	run, groups := recorder()
	q := New(2, First[int](3), run)
	q.Gather(time.Hour, func(queue []int) bool { return len(queue) >= 3 })
	q.Add(1)
	q.Add(2)
	q.Add(3)
	if g := nextGroup(t, groups); !slices.Equal(g, []int{1, 2, 3}) {
		t.Fatalf("group %v, want [1 2 3]", g)
	}
}

// A slot gathers for its wait at most: a lone item runs once it is over.
func TestGatherEndsAfterItsWait(t *testing.T) {
	run, groups := recorder()
	q := New(2, First[int](3), run)
	q.Gather(10*time.Millisecond, func([]int) bool { return false })
	q.Add(1)
	if g := nextGroup(t, groups); !slices.Equal(g, []int{1}) {
		t.Fatalf("group %v, want [1]", g)
	}
}

// An item removed while its slot gathers is never run; the items that
// come after it make the group.
func TestRemoveWhileGathering(t *testing.T) {
	run, groups := recorder()
	q := New(1, First[int](3), run)
	q.Gather(time.Hour, func(queue []int) bool { return len(queue) >= 2 })
	q.Add(1)
	if !q.Remove(1) {
		t.Fatal("Remove(1) = false while its slot gathers")
	}
	q.Add(2)
	q.Add(3)
	if g := nextGroup(t, groups); !slices.Equal(g, []int{2, 3}) {
		t.Fatalf("group %v, want [2 3]", g)
	}
}

// blocker runs groups by handing them over; a group holding 0 first waits
// for release.
func blocker() (run func([]int), groups chan []int, release chan struct{}) {
	groups, release = make(chan []int, 16), make(chan struct{})
	return func(g []int) {
		if slices.Contains(g, 0) {
			<-release
		}
		groups <- g
	}, groups, release
}

// A spilling queue runs one group at a time while it is quick: with a
// second slot free, the items that arrive behind a running group wait for
// it (the spill is an hour) and then go together.
func TestSpillWaitsBehindAQuickGroup(t *testing.T) {
	run, groups, release := blocker()
	q := New(2, First[int](10), run)
	q.Spill(time.Hour, nil)
	q.Add(0)
	q.Add(1)
	q.Add(2)
	if n := q.Len(); n != 2 {
		t.Fatalf("%d items wait, want 2: another slot opened behind a running group", n)
	}
	close(release)
	for _, want := range [][]int{{0}, {1, 2}} {
		if g := nextGroup(t, groups); !slices.Equal(g, want) {
			t.Fatalf("group %v, want %v", g, want)
		}
	}
}

// Once the running group has run for the spill, the next slot opens for
// the items waiting behind it: a group stuck (here, until the end of the
// test) holds back nothing but its own items.
func TestSpillOpensASlotBehindASlowGroup(t *testing.T) {
	run, groups, release := blocker()
	defer close(release)
	q := New(2, First[int](10), run)
	q.Spill(10*time.Millisecond, nil)
	q.Add(0)
	q.Add(1)
	if g := nextGroup(t, groups); !slices.Equal(g, []int{1}) {
		t.Fatalf("group %v, want [1]", g)
	}
}

// Behind a quick group, a whole group of waiting items opens the next
// slot at once: the spill (an hour) holds back only a partial one.
func TestSpillOpensASlotForAWholeGroup(t *testing.T) {
	run, groups, release := blocker()
	defer close(release)
	q := New(2, First[int](2), run)
	q.Spill(time.Hour, func(queue []int) bool { return len(queue) >= 2 })
	q.Add(0)
	q.Add(1)
	if n := q.Len(); n != 1 {
		t.Fatalf("%d items wait, want 1", n)
	}
	q.Add(2)
	if g := nextGroup(t, groups); !slices.Equal(g, []int{1, 2}) {
		t.Fatalf("group %v, want [1 2]", g)
	}
}
