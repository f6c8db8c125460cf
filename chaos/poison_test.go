package chaos

// A poison record in the middle of the load, and a projector stopped in
// the middle of the batch that holds it.
//
// The poison is an undecodable record (no CloudEvents headers) produced to
// a partition of the commands topic that holds commands, amid copies of
// that partition's latest command events (5 before it, 20 behind it), in
// the SAME produce request: one record batch on the broker, so the
// projector that owns the partition fetches the poison with commands
// before and behind it in one batch (the batch handler refuses that run
// and the worker goes one record at a time), and new commands of the load
// keep landing behind it. The projector retries
// the poison (IDEMGATE_MAX_ATTEMPTS=8 here: about 6 s of backoff) and then
// dead-letters it.
//
// While the poison is in hand (its owner has logged "record failed;
// retrying" for its partition and offset, and the commands behind it in
// the batch are not applied), the test stops the owner: SIGTERM the first
// time it sees that line (the worker ends its attempt and commits only
// what it completed), kill -9 the second time, by the partition's next
// owner. Once each stopped process is gone, the group's committed offset
// of the partition must not be past the poison. The owner after that
// dead-letters it. The checks: the poison is
// on the dead-letter topic, every command behind it in its partition is
// applied (completed, not dead-lettered), and the usual invariants hold.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/testenv"
)

// poisonMaxAttempts is the projectors' IDEMGATE_MAX_ATTEMPTS: attempts at
// the poison span about 6 s (50 ms doubling), long enough for the test
// to see its owner retry it and stop it there.
const poisonMaxAttempts = 8

// poisonState is what the test did with the poison record.
type poisonState struct {
	injected      bool
	partition     int32
	offset        int64
	before        int      // copies produced before it in the same request
	behind        int      // copies produced behind it in the same request
	stops         []string // the mid-batch stops done, as logged
	committed     []int64  // the group's offset of the partition once each stopped process was gone
	missed        string   // why a planned stop was not done
	deadLettered  int      // dead-letter records whose origin is the poison
	behindRecords int      // command records behind it in its partition (checks)
	behindApplied int      // their distinct commands found applied
}

// injectPoison produces the poison to the partition of the latest command
// event, amid copies of that partition's latest command events, then stops
// its owner twice while it retries the poison.
func (r *run) injectPoison() {
	// The harness's client reads and produces through the same links the
	// schedule cuts (in the cluster run, a Kafka partition cuts them all:
	// CI saw the read refused, and no poison injected).
	r.waitOutagesOver("the poison record")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := r.prefix + ".commands"
	recs, err := r.readTopic(ctx, topic)
	if err != nil || len(recs) == 0 {
		r.fail("harness", "poison: read the commands topic: %d records, %v", len(recs), err)
		return
	}
	p := recs[len(recs)-1].Partition
	var copies []*kgo.Record
	for i := len(recs) - 1; i >= 0 && len(copies) < 25; i-- {
		if rec := recs[i]; rec.Partition == p && ceID(rec) != "" {
			copies = append([]*kgo.Record{{Topic: topic, Partition: p, Key: rec.Key, Value: rec.Value, Headers: rec.Headers}}, copies...)
		}
	}
	if len(copies) < 6 {
		r.fail("harness", "poison: only %d command events in partition %d", len(copies), p)
		return
	}
	before, behind := copies[:5], copies[5:]
	poison := &kgo.Record{Topic: topic, Partition: p, Key: []byte("chaos-poison"), Value: []byte("not a command event: undecodable"),
		Headers: []kgo.RecordHeader{{Key: "chaos", Value: []byte("poison")}}}
	// One request, one record batch: the linger gathers them all.
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(r.brokers, ",")...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(200*time.Millisecond))
	if err != nil {
		r.fail("harness", "poison: %v", err)
		return
	}
	defer cl.Close()
	batch := append(append(append([]*kgo.Record{}, before...), poison), behind...)
	if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
		r.fail("harness", "poison: produce: %v", err)
		return
	}
	r.mu.Lock()
	r.poison.injected, r.poison.partition, r.poison.offset = true, p, poison.Offset
	r.poison.before, r.poison.behind = len(before), len(behind)
	r.injected += len(batch)
	r.mu.Unlock()
	r.logf("CHAOS: poison record produced to %s partition %d offset %d, with %d command events before it and %d behind it in the same batch",
		topic, p, poison.Offset, len(before), len(behind))
	r.stopMidBatch(p, poison.Offset)
}

// stopMidBatch watches the projectors' logs for a retry of the poison and
// stops the projector that logged it: SIGTERM the first time, kill -9 the
// second (a later incarnation or the other projector).
func (r *run) stopMidBatch(partition int32, offset int64) {
	re := regexp.MustCompile(fmt.Sprintf(`record failed; retrying.* partition=%d offset=%d\b`, partition, offset))
	read := map[string]int64{} // log bytes already looked at, by process
	for _, p := range r.procs {
		if fi, err := os.Stat(p.logPath); err == nil {
			read[p.name] = fi.Size()
		}
	}
	signals := []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}
	deadline := time.Now().Add(60 * time.Second)
	for len(signals) > 0 {
		if time.Now().After(deadline) {
			r.mu.Lock()
			r.poison.missed = fmt.Sprintf(" (missed: no retry of the poison seen within 60s for the %s)", stopName[signals[0]])
			r.mu.Unlock()
			return
		}
		for _, p := range r.procs {
			if p.kind != "project" || len(signals) == 0 {
				continue
			}
			pid, _ := p.state()
			if pid == 0 || !newLineMatches(p.logPath, &read, p.name, re) {
				continue
			}
			sig := signals[0]
			if !p.signalPID(pid, sig) {
				continue // it has just died (a fault point); the next owner logs again
			}
			signals = signals[1:]
			what := stopName[sig]
			r.mu.Lock()
			r.poison.stops = append(r.poison.stops, fmt.Sprintf("%s %s", what, p.name))
			r.mu.Unlock()
			r.logf("CHAOS: %s %s (pid %d) in the middle of a batch: it is retrying the poison, the commands behind it are not applied", what, p.name, pid)
			r.checkCommittedAfterStop(p, pid, what, partition, offset)
			// The stopped process's later lines (and its successor's) are
			// looked at afresh: skip what it logged up to now.
			if fi, err := os.Stat(p.logPath); err == nil {
				read[p.name] = fi.Size()
			}
		}
		// Not a wait: the watch's reaction time. The stop must land
		// while the worker still retries the poison mid-batch, so the
		// log is read every 20 ms (Poll's pauses grow to 200 ms).
		time.Sleep(20 * time.Millisecond)
	}
}

// checkCommittedAfterStop waits for the stopped process to be gone and
// reads the group's committed offset of the poison's partition: a worker
// stopped with the poison in hand commits at most up to it (the records
// before it that it completed). Past it would skip the poison and the
// commands behind it in the batch, never applied by this group; only the
// test's final duplication of every event would hide the loss.
func (r *run) checkCommittedAfterStop(p *proc, pid int, what string, partition int32, offset int64) {
	if err := testenv.Poll(context.Background(), 30*time.Second, func() error {
		now, _ := p.state()
		return testenv.Check(now != pid, "still running")
	}); err != nil {
		r.fail("poison: mid-batch stop", "%s (pid %d) %v after %s", p.name, pid, err, what)
		return
	}
	// Read again on an error: on the cluster a node may be down (its
	// proxy then closes each connection at once) or the group's
	// coordinator moving.
	var at int64
	err := testenv.Poll(context.Background(), time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		at, err = r.committedOffset(ctx, r.prefix+".commands", partition)
		return err
	})
	if err != nil {
		r.fail("harness", "poison: committed offset after the %s: %v", what, err)
		return
	}
	r.mu.Lock()
	r.poison.committed = append(r.poison.committed, at)
	r.mu.Unlock()
	r.logf("after the %s of %s, the group's committed offset of partition %d is %d (the poison is at %d)", what, p.name, partition, at, offset)
	if at > offset {
		r.fail("poison: committed past a record in hand", "after the %s of %s, partition %d committed at %d, past the poison at %d and the commands behind it",
			what, p.name, partition, at, offset)
	}
}

// committedOffset is the projectors' group's committed offset of one
// partition (0 when none).
func (r *run) committedOffset(ctx context.Context, topic string, partition int32) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(r.brokers, ",")...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, r.group)
	if err != nil {
		return 0, err
	}
	if o, ok := offs.Lookup(topic, partition); ok && o.Err == nil {
		return o.At, nil
	}
	return 0, nil
}

var stopName = map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "kill -9"}

// newLineMatches reports whether the log at path has, past what was read
// of it, a line matching re; it moves read past the complete lines.
func newLineMatches(path string, read *map[string]int64, name string, re *regexp.Regexp) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek((*read)[name], 0); err != nil {
		return false
	}
	br := bufio.NewReader(f)
	found := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break // a partial line is read again next time
		}
		(*read)[name] += int64(len(line))
		if re.MatchString(line) {
			found = true
		}
	}
	return found
}

// checkPoison checks the poison was dead-lettered and every command behind
// it in its partition applied.
func (r *run) checkPoison(ctx context.Context, claims map[string]claimRow, outbox map[string]outboxRow) {
	r.mu.Lock()
	ps := r.poison
	r.mu.Unlock()
	if !ps.injected {
		r.fail("poison", "no poison record was injected")
		return
	}
	if ps.missed != "" || len(ps.stops) < 2 {
		r.fail("poison: mid-batch stop", "stops done %v%s", ps.stops, ps.missed)
	}
	origin := fmt.Sprintf("%s.commands/%d/%d", r.prefix, ps.partition, ps.offset)
	dead, err := r.readTopic(ctx, r.prefix+".deadletter")
	if err != nil {
		r.fail("harness", "read the dead-letter topic: %v", err)
	}
	for _, rec := range dead {
		for _, h := range rec.Headers {
			if h.Key == "idemgate_origin" && string(h.Value) == origin {
				ps.deadLettered++
			}
		}
	}
	if ps.deadLettered == 0 {
		r.fail("poison", "the poison record %s is not on the dead-letter topic (%d records there)", origin, len(dead))
	}
	recs, err := r.readTopic(ctx, r.prefix+".commands")
	if err != nil {
		r.fail("harness", "read the commands topic: %v", err)
	}
	applied := map[string]bool{}
	for _, rec := range recs {
		id := ceID(rec)
		if rec.Partition != ps.partition || rec.Offset <= ps.offset || id == "" {
			continue
		}
		ps.behindRecords++
		c, ok := claims[id]
		o, done := outbox[id]
		switch {
		case !ok:
			r.fail("poison: a command behind it lost", "record %d of partition %d: operation %s has no claim", rec.Offset, rec.Partition, id)
		case !done || c.state != "completed":
			r.fail("poison: a command behind it lost", "record %d of partition %d: operation %s (%s) is %s", rec.Offset, rec.Partition, id, c.key, c.state)
		case strings.HasSuffix(problemType(o.body), "processing-failed"):
			r.fail("poison: a command behind it dead-lettered", "record %d of partition %d: operation %s (%s)", rec.Offset, rec.Partition, id, c.key)
		default:
			applied[id] = true
		}
	}
	ps.behindApplied = len(applied)
	if ps.behindRecords == 0 {
		r.fail("poison", "no command record behind the poison in partition %d", ps.partition)
	}
	r.mu.Lock()
	r.poison = ps
	r.mu.Unlock()
}
