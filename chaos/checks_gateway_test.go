package chaos

// The gateway's checks: the orders service's answers against the claims
// and the outbox. Each accepted order command has exactly one answer at
// the service, under its operation id, and that answer is the outcome
// idemgate recorded, byte for byte; the service holds nothing else.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"
)

// orderTally is what the summary reports of the gateway.
type orderTally struct {
	creates, cancels                 int // commands sent
	acceptedCreates, acceptedCancels int // claims
	effects                          int // orders created: 201 answers to orders.create in the service's data file
	duplicates                       int // data file lines beyond the first of a key
	fileLines, fileKeys              int
	cancelOutcomes                   map[string]int
	cancelled                        int            // orders with a 200 cancel
	upstreamFailed                   int            // stored 502 /upstream-failed
	attempts, called, maxAttempts    int            // call_attempts
	byAttempts                       map[string]int // commands by attempts begun
	failedAttempt, refused           int            // commands with a failed attempt noted; of which connection refused
	longestSpan                      time.Duration  // first to last attempt of one command
}

// checkOrder compares a completed order command's recorded outcome with
// the answer the orders service recorded under its operation id.
func (r *run) checkOrder(c *command, cl claimRow, o outboxRow, up upstreamView, ot *orderTally) {
	action := "create"
	if c.operation == opOrderCancel {
		action = "cancel"
		if ot.cancelOutcomes == nil {
			ot.cancelOutcomes = map[string]int{}
		}
		ot.cancelOutcomes[fmt.Sprintf("%s %d", c.kind, o.status)]++
	}
	e, ok := up.listed[cl.opID]
	if !ok {
		return // reported by checkUpstream, from the claims
	}
	if c.operation == opOrderCancel {
		if e.Order != c.target {
			r.fail("I3: one upstream effect per command", "%s (operation %s) cancels %s, the service recorded a cancel of %s", c.key, cl.opID, c.target, e.Order)
		}
	}
	loc := ""
	if e.Status < 300 {
		loc = "/orders/" + e.Order
	}
	if e.Action != action || o.status != e.Status || o.ctype != "application/json" || o.loc != loc || !bytes.Equal(o.body, e.Body) {
		r.fail("gateway: recorded outcome is the upstream's answer", "%s (operation %s): outbox %d %q %q %s, the service recorded %s %d %q %s",
			c.key, cl.opID, o.status, o.ctype, o.loc, o.body, e.Action, e.Status, loc, e.Body)
	}
}

// checkUpstream checks the orders service as a whole: one answer per
// accepted order command (from the claims), none for anything else, no
// key recorded twice in its data file, and at most one successful cancel
// per order.
func (r *run) checkUpstream(ctx context.Context, claims map[string]claimRow, outbox map[string]outboxRow, up upstreamView, ot *orderTally) {
	for id, cl := range claims {
		if cl.operation != opOrderCreate && cl.operation != opOrderCancel {
			continue
		}
		if cl.operation == opOrderCreate {
			ot.acceptedCreates++
		} else {
			ot.acceptedCancels++
		}
		e, ok := up.listed[id]
		switch {
		case !ok:
			r.fail("I3: one upstream effect per command", "%s %s (operation %s, %s) has no answer at the orders service", cl.operation, cl.key, id, cl.state)
		case cl.operation == opOrderCreate && (e.Action != "create" || e.Status != http.StatusCreated):
			r.fail("I3: one upstream effect per command", "%s (operation %s): the service recorded %s %d %s", cl.key, id, e.Action, e.Status, e.Body)
		}
		if _, ok := outbox[id]; !ok && cl.state == "completed" {
			r.fail("I3: one outbox row per claim", "%s (operation %s) is completed without an outbox row", cl.key, id)
		}
	}
	cancels := map[string]map[int]int{} // order -> status -> n
	for key, e := range up.listed {
		cl, ok := claims[key]
		if !ok || (cl.operation != opOrderCreate && cl.operation != opOrderCancel) {
			r.fail("I3: one upstream effect per command", "the orders service recorded %s %d under key %s, which is no accepted order command's operation id", e.Action, e.Status, key)
		}
		switch e.Action {
		case "cancel":
			if cancels[e.Order] == nil {
				cancels[e.Order] = map[int]int{}
			}
			cancels[e.Order][e.Status]++
		}
	}
	// Every answer is appended to the data file before it is sent, so
	// its lines count the effects, a second one for a key included.
	ot.effects = up.created
	if ot.effects != ot.acceptedCreates {
		r.fail("I3: one upstream effect per command", "%d orders created at the service for %d accepted orders.create commands", ot.effects, ot.acceptedCreates)
	}
	for order, by := range cancels {
		if by[http.StatusOK] == 1 {
			ot.cancelled++
		}
		if by[http.StatusOK] > 1 || (by[http.StatusConflict] > 0 && by[http.StatusOK] != 1) {
			r.fail("I3: one upstream effect per command", "order %s: cancels answered %v", order, by)
		}
	}
	ot.fileLines, ot.fileKeys = up.nLines, len(up.lines)
	for key, n := range up.lines {
		if n > 1 {
			ot.duplicates += n - 1
			r.fail("I3: one upstream effect per command", "key %s has %d lines in the orders service's data file", key, n)
		}
		if _, ok := up.listed[key]; !ok {
			r.fail("harness", "key %s is in the data file but not in GET /orders", key)
		}
	}
	if up.badLines > 0 {
		r.fail("I3: one upstream effect per command", "%d lines of the orders service's data file are not an answer", up.badLines)
	}
	if len(up.listed) != len(up.lines) {
		r.fail("harness", "GET /orders lists %d keys, the data file holds %d", len(up.listed), len(up.lines))
	}
	err := r.db.QueryRow(ctx, `SELECT count(*), coalesce(sum(a.attempts), 0), coalesce(max(a.attempts), 0)
FROM call_attempts a JOIN idempotency_claims c ON c.operation_id = a.operation_id
WHERE c.operation IN ($1, $2)`, opOrderCreate, opOrderCancel).Scan(&ot.called, &ot.attempts, &ot.maxAttempts)
	if err != nil {
		r.fail("harness", "read call_attempts: %v", err)
	}
	ot.byAttempts = map[string]int{}
	rows, err := r.db.Query(ctx, `SELECT a.attempts, a.last_error <> '', a.last_error LIKE '%connection refused%',
       extract(epoch FROM a.last_attempt_at - a.first_attempt_at)::float8 FROM call_attempts a
JOIN idempotency_claims c ON c.operation_id = a.operation_id WHERE c.operation IN ($1, $2)`, opOrderCreate, opOrderCancel)
	if err != nil {
		r.fail("harness", "read call_attempts: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		var failed, refused bool
		var span float64
		if err := rows.Scan(&n, &failed, &refused, &span); err != nil {
			r.fail("harness", "read call_attempts: %v", err)
			return
		}
		ot.byAttempts[fmt.Sprint(n)]++
		if failed {
			ot.failedAttempt++
		}
		if refused {
			ot.refused++
		}
		ot.longestSpan = max(ot.longestSpan, time.Duration(span*float64(time.Second)))
	}
	if ot.refused == 0 {
		r.fail("harness", "no call met the orders service's outage (no attempt failed with connection refused)")
	}
	if ot.called != ot.acceptedCreates+ot.acceptedCancels {
		r.fail("gateway: recovery points", "%d commands have call attempts, %d order commands were accepted", ot.called, ot.acceptedCreates+ot.acceptedCancels)
	}
}
