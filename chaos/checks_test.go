package chaos

// The checks, once every command has completed: from the database (I1,
// I2, I3), by replaying every command (I4), and from the results topic.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/fault"
	"github.com/idemgate/idemgate/roles"
)

type claimRow struct {
	tenant, operation, key, opID, state, target string
	created                                     time.Time
	completed                                   *time.Time
}

type outboxRow struct {
	status      int
	ctype, loc  string
	body        []byte
	sent        bool
	tenant, op  string
	operationID string
}

type paymentRow struct {
	id, tenant, opID       string
	amount, refundedAmount int64
}

type refundRow struct {
	id, tenant, paymentID, opID string
	amount                      int64
}

// tally is what the summary reports.
type tally struct {
	commands, payments, refunds int
	orders                      orderTally
	outcomes                    map[string]int // operation status -> n
	claims, completed           int
	lagMax, lagP50, lagP99      time.Duration
	processed                   int
	replays                     int
	resultRecords, resultIDs    int
	resultDuplicates            int
	commandRecords, commandIDs  int
	faultHits                   map[string]int
	exits                       map[string]map[string]int
	processingFailed            int
	serialization               map[string]int // logged 40001 failures by message
	history                     historyTally
}

func (r *run) check() tally {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tl := tally{outcomes: map[string]int{}}
	r.mu.Lock()
	cmds := append([]*command(nil), r.cmds...)
	r.mu.Unlock()
	tl.commands = len(cmds)
	byKey := map[string]*command{}
	for _, c := range cmds {
		byKey[c.tenant+"/"+c.operation+"/"+c.key] = c
		switch c.operation {
		case opPayment:
			tl.payments++
		case opRefund:
			tl.refunds++
		case opOrderCreate:
			tl.orders.creates++
		case opOrderCancel:
			tl.orders.cancels++
		}
	}

	// ---- the database ----
	claims := map[string]claimRow{} // by operation id
	claimOf := map[*command]claimRow{}
	rows, err := r.db.Query(ctx, `SELECT c.tenant_id, c.operation, c.idem_key, c.operation_id::TEXT, `+derivedState+`, c.target, c.created_at, o.created_at `+claimsJoined)
	if err != nil {
		r.t.Fatalf("read claims: %v", err)
	}
	var lags []time.Duration
	for rows.Next() {
		var c claimRow
		if err := rows.Scan(&c.tenant, &c.operation, &c.key, &c.opID, &c.state, &c.target, &c.created, &c.completed); err != nil {
			r.t.Fatal(err)
		}
		claims[c.opID] = c
		cmd := byKey[c.tenant+"/"+c.operation+"/"+c.key]
		if cmd == nil {
			r.fail("I1: claim without a command", "claim %s/%s/%s (operation %s) matches no command sent", c.tenant, c.operation, c.key, c.opID)
			continue
		}
		if _, dup := claimOf[cmd]; dup {
			r.fail("I1: one claim per key", "two claims for %s", c.key)
		}
		claimOf[cmd] = c
		if c.state == "completed" {
			tl.completed++
			if c.completed != nil {
				lags = append(lags, c.completed.Sub(c.created))
			}
		}
	}
	rows.Close()
	tl.claims = len(claims)
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	if n := len(lags); n > 0 {
		tl.lagMax, tl.lagP50, tl.lagP99 = lags[n-1], lags[n/2], lags[min(n-1, n*99/100)]
	}

	outbox := map[string]outboxRow{}
	rows, err = r.db.Query(ctx, `SELECT operation_id::TEXT, tenant_id, operation, status, content_type, location, body, sent_at IS NOT NULL FROM outbox`)
	if err != nil {
		r.t.Fatalf("read outbox: %v", err)
	}
	for rows.Next() {
		var id string
		var o outboxRow
		if err := rows.Scan(&id, &o.tenant, &o.op, &o.status, &o.ctype, &o.loc, &o.body, &o.sent); err != nil {
			r.t.Fatal(err)
		}
		o.operationID = id
		outbox[id] = o
		if _, ok := claims[id]; !ok {
			r.fail("I3: one outbox row per claim", "outbox row %s has no claim", id)
		}
		if !o.sent {
			r.fail("results", "outbox row %s never marked sent", id)
		}
	}
	rows.Close()

	processed := map[string]int{}
	// The dedup records of the project role (named once for every
	// operation since the registry refactor).
	rows, err = r.db.Query(ctx, `SELECT event_id FROM processed_events WHERE projector = $1`, roles.ProjectorName)
	if err != nil {
		r.t.Fatalf("read processed_events: %v", err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			r.t.Fatal(err)
		}
		processed[id]++
	}
	rows.Close()
	tl.processed = len(processed)

	payByOp := map[string][]paymentRow{}
	payByID := map[string]paymentRow{}
	rows, err = r.db.Query(ctx, `SELECT payment_id::TEXT, tenant_id, operation_id::TEXT, amount, refunded_amount FROM payments`)
	if err != nil {
		r.t.Fatalf("read payments: %v", err)
	}
	for rows.Next() {
		var p paymentRow
		if err := rows.Scan(&p.id, &p.tenant, &p.opID, &p.amount, &p.refundedAmount); err != nil {
			r.t.Fatal(err)
		}
		payByOp[p.opID] = append(payByOp[p.opID], p)
		payByID[p.id] = p
	}
	rows.Close()
	refByOp := map[string][]refundRow{}
	refundSum := map[string]int64{}
	nRefunds := 0
	rows, err = r.db.Query(ctx, `SELECT refund_id::TEXT, tenant_id, payment_id::TEXT, operation_id::TEXT, amount FROM refunds`)
	if err != nil {
		r.t.Fatalf("read refunds: %v", err)
	}
	for rows.Next() {
		var f refundRow
		if err := rows.Scan(&f.id, &f.tenant, &f.paymentID, &f.opID, &f.amount); err != nil {
			r.t.Fatal(err)
		}
		refByOp[f.opID] = append(refByOp[f.opID], f)
		refundSum[f.paymentID] += f.amount
		nRefunds++
	}
	rows.Close()

	// ---- the upstream ----
	up, err := r.readUpstream(ctx)
	if err != nil {
		r.fail("harness", "read the orders service: %v", err)
	}

	// ---- per command ----
	pays201, refunds201 := 0, 0
	for _, c := range cmds {
		c.mu.Lock()
		opIDs := make([]string, 0, len(c.opIDs))
		for id := range c.opIDs {
			opIDs = append(opIDs, id)
		}
		accepted := c.accepted
		observed := append([]observation(nil), c.observed...)
		c.mu.Unlock()
		cl, ok := claimOf[c]
		if !ok {
			if accepted || len(opIDs) > 0 {
				r.fail("I2: accepted but not completed", "%s (%s) was answered 202 %v but has no claim", c.key, c.kind, opIDs)
			} else {
				r.fail("availability", "%s (%s) was never accepted", c.key, c.kind)
			}
			continue
		}
		// I1: every 202 named the claim's one operation.
		for _, id := range opIDs {
			if id != cl.opID {
				r.fail("I1: one operation per key", "%s: 202 named operation %s, the claim holds %s", c.key, id, cl.opID)
			}
		}
		// I2: every accepted command is completed.
		if cl.state != "completed" {
			r.fail("I2: accepted but not completed", "%s (operation %s, %s) is %s; answered 202: %v", c.key, cl.opID, c.kind, cl.state, len(opIDs) > 0)
			continue
		}
		o, ok := outbox[cl.opID]
		if !ok {
			r.fail("I3: one outbox row per claim", "%s (operation %s) is completed without an outbox row", c.key, cl.opID)
			continue
		}
		tl.outcomes[fmt.Sprintf("%s %d", c.operation, o.status)]++
		if processed[cl.opID] != 1 {
			r.fail("I3: one processed event per claim", "%s (operation %s): %d processed_events rows", c.key, cl.opID, processed[cl.opID])
		}
		if o.status == http.StatusInternalServerError {
			tl.processingFailed++
			r.fail("stored /processing-failed (dead-lettered)", "%s (operation %s): %s", c.key, cl.opID, o.body)
		}
		if o.status == http.StatusBadGateway && strings.HasSuffix(problemType(o.body), "/upstream-failed") {
			tl.orders.upstreamFailed++
			r.fail("stored /upstream-failed (calls exhausted)", "%s (operation %s): %s", c.key, cl.opID, o.body)
		}
		if c.kind == "cancel" && o.status != http.StatusOK && o.status != http.StatusConflict {
			r.fail("outcome", "%s (cancel of order %s): recorded %d: %s", c.key, c.target, o.status, o.body)
		}
		if c.kind == "refund" && o.status != http.StatusCreated && o.status != http.StatusUnprocessableEntity {
			r.fail("outcome", "%s (refund of an existing payment %s): recorded %d: %s", c.key, c.target, o.status, o.body)
		}
		if c.kind == "refund-pending" && o.status != http.StatusCreated && o.status != http.StatusUnprocessableEntity && o.status != http.StatusNotFound {
			r.fail("outcome", "%s (refund of an accepted payment %s): recorded %d: %s", c.key, c.target, o.status, o.body)
		}
		if c.expect != 0 && o.status != c.expect {
			r.fail("outcome", "%s (%s, amount %d): recorded %d, expected %d: %s", c.key, c.kind, c.amount, o.status, c.expect, o.body)
		}
		// Every outcome a client saw is the one recorded (it never changes).
		for _, ob := range observed {
			if ob.status != o.status || !bytes.Equal(ob.body, compact(o.body)) ||
				(ob.via == "replay" && (ob.ctype != o.ctype || ob.loc != o.loc)) {
				r.fail("I4: replay equals the stored response", "%s: a client saw %s %d %q %s, the outbox holds %d %q %s",
					c.key, ob.via, ob.status, ob.loc, ob.body, o.status, o.loc, o.body)
			}
		}
		// I3: exactly one effect, matching the command.
		switch c.operation {
		case opPayment:
			ps := payByOp[cl.opID]
			switch o.status {
			case http.StatusCreated:
				pays201++
				var body struct {
					ID     string `json:"id"`
					Amount int64  `json:"amount"`
				}
				_ = json.Unmarshal(o.body, &body)
				if len(ps) != 1 {
					r.fail("I3: exactly one effect", "%s (operation %s): 201 recorded, %d payments rows", c.key, cl.opID, len(ps))
				} else if p := ps[0]; p.amount != c.amount || p.tenant != c.tenant || p.id != body.ID || body.Amount != c.amount || o.loc != "/v1/payments/"+p.id {
					r.fail("I3: exactly one effect", "%s: payment row %+v vs command amount %d tenant %s, outcome %s at %s", c.key, p, c.amount, c.tenant, o.body, o.loc)
				}
			default:
				if len(ps) != 0 {
					r.fail("I3: exactly one effect", "%s (operation %s): %d recorded but %d payments rows", c.key, cl.opID, o.status, len(ps))
				}
			}
		case opOrderCreate, opOrderCancel:
			r.checkOrder(c, cl, o, up, &tl.orders)
		case opRefund:
			fs := refByOp[cl.opID]
			switch o.status {
			case http.StatusCreated:
				refunds201++
				if len(fs) != 1 {
					r.fail("I3: exactly one effect", "%s (operation %s): 201 recorded, %d refunds rows", c.key, cl.opID, len(fs))
				} else if f := fs[0]; f.amount != c.amount || f.paymentID != c.target || f.tenant != c.tenant {
					r.fail("I3: exactly one effect", "%s: refund row %+v vs command amount %d of %s", c.key, f, c.amount, c.target)
				}
			default:
				if len(fs) != 0 {
					r.fail("I3: exactly one effect", "%s (operation %s): %d recorded but %d refunds rows", c.key, cl.opID, o.status, len(fs))
				}
			}
		}
	}
	if n := len(payByID); n != pays201 {
		r.fail("I3: exactly one effect", "%d payments rows for %d recorded 201 payments", n, pays201)
	}
	if nRefunds != refunds201 {
		r.fail("I3: exactly one effect", "%d refunds rows for %d recorded 201 refunds", nRefunds, refunds201)
	}
	if len(processed) != tl.completed {
		r.fail("I3: one processed event per claim", "%d processed events for %d completed claims", len(processed), tl.completed)
	}
	for id, p := range payByID {
		if p.refundedAmount != refundSum[id] || p.refundedAmount > p.amount {
			r.fail("I3: refunded amount", "payment %s: refunded_amount %d, refunds sum %d, amount %d", id, p.refundedAmount, refundSum[id], p.amount)
		}
	}
	for pid := range refundSum {
		if _, ok := payByID[pid]; !ok {
			r.fail("I3: exactly one effect", "refunds of payment %s, which does not exist", pid)
		}
	}

	r.checkUpstream(ctx, claims, outbox, up, &tl.orders)

	// ---- I4: replays ----
	tl.replays = r.checkReplays(cmds, claimOf, outbox)

	// ---- the history of every POST, with porcupine ----
	tl.history = r.checkHistory()

	// ---- the topics ----
	tl.commandRecords, tl.commandIDs = r.checkCommands(ctx, claims)
	tl.resultRecords, tl.resultIDs, tl.resultDuplicates = r.checkResults(ctx, claims, outbox)
	r.checkPoison(ctx, claims, outbox)

	// ---- the run itself ----
	tl.faultHits = r.faultHits()
	for _, p := range fault.Points() {
		if tl.faultHits[p] == 0 {
			r.fail("fault points", "%s never fired", p)
		}
	}
	tl.exits = r.exitSummary()
	nk := 0
	for _, v := range r.kills {
		nk += v
	}
	if nk != r.cfg.kills {
		r.fail("harness", "%d kills instead of %d", nk, r.cfg.kills)
	}
	// The single-node run restarts the broker and PostgreSQL once; the
	// cluster run kills two partition leaders and fails the database
	// over once.
	wantKafka := 1
	if r.cl != nil {
		wantKafka = 2
	}
	if r.kafkaOut.restarts != wantKafka || r.pgOut.restarts != 1 || r.upOut.restarts != 1 {
		r.fail("harness", "%d broker restarts, %d PostgreSQL restarts and %d orders service restarts instead of %d, 1 and 1",
			r.kafkaOut.restarts, r.pgOut.restarts, r.upOut.restarts, wantKafka)
	}
	if r.midCall.done != r.midCall.planned {
		r.fail("harness", "%d of %d kills of a projector with its call in flight happened (%d found no call to catch)",
			r.midCall.done, r.midCall.planned, r.midCall.missed)
	}
	if n, lines := r.scanLogs(regexp.MustCompile(`^(panic:|fatal error:)|DATA RACE`), 10); n > 0 {
		r.fail("crash", "%d panics in the process logs: %s", n, strings.Join(lines, " | "))
	}
	if n := r.stats.conflicts.Load(); n > 0 {
		r.fail("I4: 409 on an equivalent retry", "%d answers were idemgate's 409", n)
	}
	tl.serialization = map[string]int{}
	_, lines := r.scanLogs(regexp.MustCompile(`SQLSTATE 40001`), 1<<30)
	msg := regexp.MustCompile(`err="([^:]+):`)
	for _, l := range lines {
		kind, _, _ := strings.Cut(l, ":")
		what := "?"
		if m := msg.FindStringSubmatch(l); m != nil {
			what = m[1]
		}
		tl.serialization[strings.TrimRight(kind, "-0123456789")+": "+what]++
	}
	return tl
}

// checkReplays replays every command twice, with its body and with its
// other spelling, and compares both to each other and to the outbox.
func (r *run) checkReplays(cmds []*command, claimOf map[*command]claimRow, outbox map[string]outboxRow) int {
	var wg sync.WaitGroup
	var n sync.Mutex
	count := 0
	work := make(chan *command)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(r.cfg.seed, uint64(100+w)))
			for c := range work {
				cl, ok := claimOf[c]
				if !ok {
					continue
				}
				o, ok := outbox[cl.opID]
				if !ok {
					continue
				}
				var got [2]answer
				for i, body := range []string{c.body, c.alt} {
					a, err := r.replay(c, fmt.Sprintf("checker-%02d", w), body, rng)
					if err != nil {
						r.fail("I4: replay equals the stored response", "%s: replay: %v", c.key, err)
						continue
					}
					got[i] = a
					r.countStatus(a.status)
					if a.status == http.StatusConflict && a.replayed != "true" {
						r.stats.conflicts.Add(1)
					}
					if a.status != o.status || a.ctype != o.ctype || a.location != o.loc || !bytes.Equal(a.body, o.body) || a.replayed != "true" {
						r.fail("I4: replay equals the stored response", "%s (operation %s), replay %d: got %d %q %q %s (replayed %q), stored %d %q %q %s",
							c.key, cl.opID, i+1, a.status, a.ctype, a.location, a.body, a.replayed, o.status, o.ctype, o.loc, o.body)
					}
				}
				n.Lock()
				count += 2
				n.Unlock()
			}
		}()
	}
	for _, c := range cmds {
		work <- c
	}
	close(work)
	wg.Wait()
	return count
}

// replay POSTs c again (retrying transport errors and 503, which no
// longer happen once the chaos is over, but cost nothing to allow).
func (r *run) replay(c *command, client, body string, rng *mrand.Rand) (answer, error) {
	var last error
	for i := 0; i < 5; i++ {
		a, err := r.post(client, "final replay", c, body, rng)
		if err == nil && a.status != http.StatusServiceUnavailable {
			return a, nil
		}
		if err == nil {
			err = fmt.Errorf("%d %s", a.status, a.body)
		}
		last = err
		time.Sleep(200 * time.Millisecond) // a retry's pause after a failed attempt, not a wait
	}
	return answer{}, last
}

// derivedState is a claim's state as the store derives it: completed
// once its outbox row exists, accepted while its command_pending row
// exists (Kafka has not acknowledged its event), published otherwise
// (store/migrations/0007_pending.sql); claimsJoined joins what it needs.
const (
	derivedState = `CASE WHEN o.operation_id IS NOT NULL THEN 'completed' WHEN p.operation_id IS NOT NULL AND p.acked_region IS NULL THEN 'accepted' ELSE 'published' END`
	claimsJoined = `FROM idempotency_claims c LEFT JOIN outbox o ON o.operation_id = c.operation_id
LEFT JOIN command_pending p ON p.operation_id = c.operation_id`
)

// ceID is a record's CloudEvents id.
func ceID(rec *kgo.Record) string {
	for _, h := range rec.Headers {
		if h.Key == "ce_id" {
			return string(h.Value)
		}
	}
	return ""
}

// checkCommands reads the commands topic: every claim's event is on it
// (the sweeper emitted what the API did not).
func (r *run) checkCommands(ctx context.Context, claims map[string]claimRow) (records, ids int) {
	recs, err := r.readTopic(ctx, r.prefix+".commands")
	if err != nil {
		r.fail("harness", "read the commands topic: %v", err)
		return 0, 0
	}
	seen := map[string]int{}
	for _, rec := range recs {
		if id := ceID(rec); id != "" { // the poison has none
			seen[id]++
		}
	}
	for id, c := range claims {
		if seen[id] == 0 {
			r.fail("I2: accepted but not completed", "operation %s (%s) was never emitted to the commands topic", id, c.key)
		}
	}
	return len(recs), len(seen)
}

// checkResults reads the results topic from the start to its end offsets
// and checks that every completed operation is there at least once, with
// its recorded outcome.
func (r *run) checkResults(ctx context.Context, claims map[string]claimRow, outbox map[string]outboxRow) (records, ids, dups int) {
	topic := r.prefix + ".results"
	recs, err := r.readTopic(ctx, topic)
	if err != nil {
		r.fail("results", "%v", err)
	}
	seen := map[string]int{}
	eventIDs := map[string]int{}
	for _, rec := range recs {
		eventIDs[ceID(rec)]++
		records++
		// A result's ce_id is "<operation id>:completed:<recorded at>":
		// distinct from its command's (the operation id).
		eventID := ceID(rec)
		id, _, _ := strings.Cut(eventID, ":completed:")
		if !strings.Contains(eventID, ":completed:") {
			r.fail("results", "result record %s/%d/%d: ce_id %q is not <operation id>:completed:<recorded at>", rec.Topic, rec.Partition, rec.Offset, eventID)
		}
		var ev struct {
			OperationID string          `json:"operation_id"`
			Status      int             `json:"status"`
			Location    string          `json:"location"`
			Body        json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(rec.Value, &ev); err != nil || ev.OperationID != id {
			r.fail("results", "result record %s/%d/%d: ce_id %q, body %s", rec.Topic, rec.Partition, rec.Offset, id, rec.Value)
		}
		seen[id]++
		if o, ok := outbox[id]; !ok {
			r.fail("results", "result for unknown operation %s", id)
		} else if ev.Status != o.status || ev.Location != o.loc || !bytes.Equal(compact(ev.Body), compact(o.body)) {
			r.fail("results", "result for %s: %d %q %s, outbox %d %q %s", id, ev.Status, ev.Location, ev.Body, o.status, o.loc, o.body)
		}
	}
	for id, c := range claims {
		if c.state == "completed" && seen[id] == 0 {
			r.fail("results: every outcome at least once", "operation %s (%s) is not on %s", id, c.key, topic)
		}
	}
	for _, n := range eventIDs {
		dups += n - 1 // the relay published the same outcome again: same event id
	}
	return records, len(seen), dups
}

// summary logs the run's numbers.
func (r *run) summary(tl tally) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kinds := []string{"serve", "project", "relay"}
	exits := make([]string, 0, len(kinds))
	for _, k := range kinds {
		exits = append(exits, k+": "+formatCounts(tl.exits[k]))
	}
	statuses := map[string]int{}
	for s, n := range r.statuses {
		statuses[fmt.Sprint(s)] = n
	}
	var b strings.Builder
	fmt.Fprintf(&b, "==================== chaos summary (run %s, seed %d) ====================\n", r.runID, r.cfg.seed)
	fmt.Fprintf(&b, "commands              %d (%d payments, %d refunds, %d orders.create, %d orders.cancel; %d of them top-up), %d clients, load %v\n",
		tl.commands, tl.payments, tl.refunds, tl.orders.creates, tl.orders.cancels, r.topUpCommands, r.cfg.clients, r.cfg.duration)
	fmt.Fprintf(&b, "retries               %d (%d transport errors; %d sends with a respelled body, %d immediate respelled duplicates)\n",
		r.stats.retries.Load(), r.stats.transportErrors.Load(), r.stats.respelled.Load(), r.stats.duplicates.Load())
	fmt.Fprintf(&b, "202 answers           %d; stored outcomes answered to a retry during the load: %d (%d late retries of completed commands)\n",
		r.stats.accepted202.Load(), r.stats.storedDirect.Load(), r.stats.lateRetries.Load())
	fmt.Fprintf(&b, "HTTP statuses seen    %s (load, drain and replay checks)\n", formatCounts(statuses))
	fmt.Fprintf(&b, "409 / unexpected 500  %d / %d (idemgate's own; a cancel's recorded 409 is the orders service's); stored /processing-failed: %d, /upstream-failed: %d\n",
		r.stats.conflicts.Load(), r.stats.unexpected500.Load(), tl.processingFailed, tl.orders.upstreamFailed)
	fmt.Fprintf(&b, "outcomes              %s\n", formatCounts(tl.outcomes))
	fmt.Fprintf(&b, "kill -9 by kind       %s (total %d)\n", formatCounts(r.kills), r.cfg.kills)
	fmt.Fprintf(&b, "fault-point deaths    %s\n", formatCounts(tl.faultHits))
	fmt.Fprintf(&b, "process exits         %s\n", strings.Join(exits, "; "))
	fmt.Fprintf(&b, "slow SIGTERM stops    %s (did not exit within 15s; killed)\n", formatCounts(r.slowStops))
	fmt.Fprintf(&b, "broker restarts       %d (down %v)\n", r.kafkaOut.restarts, r.kafkaOut.down.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "PostgreSQL restarts   %d (kill -9, down %v)\n", r.pgOut.restarts, r.pgOut.down.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "upstream restarts     %d (orders service kill -9, down %v)\n", r.upOut.restarts, r.upOut.down.Round(100*time.Millisecond))
	o := tl.orders
	fmt.Fprintf(&b, "gateway orders        orders.create: %d accepted, %d effects at the upstream (orders created, from its data file); duplicates %d (data file: %d lines, %d keys)\n",
		o.acceptedCreates, o.effects, o.duplicates, o.fileLines, o.fileKeys)
	fmt.Fprintf(&b, "gateway cancels       %d accepted: %s; orders cancelled %d\n", o.acceptedCancels, formatCounts(o.cancelOutcomes), o.cancelled)
	fmt.Fprintf(&b, "upstream calls        %d attempts begun for %d commands (commands by attempts: %s; %d with a failed attempt noted, %d of them connection refused; longest first-to-last attempt %v); %d kill -9 with a call in flight; %d deaths at %s\n",
		o.attempts, o.called, formatCounts(o.byAttempts), o.failedAttempt, o.refused, o.longestSpan.Round(100*time.Millisecond), r.midCall.done, tl.faultHits[fault.AfterUpstreamCall], fault.AfterUpstreamCall)
	fmt.Fprintf(&b, "claims                %d, completed %d, processed events %d\n", tl.claims, tl.completed, tl.processed)
	fmt.Fprintf(&b, "completion lag        p50 %v, p99 %v, max %v (claim commit -> outcome recorded)\n",
		tl.lagP50.Round(time.Millisecond), tl.lagP99.Round(time.Millisecond), tl.lagMax.Round(time.Millisecond))
	fmt.Fprintf(&b, "40001 not retried     %s (warnings logged)\n", formatCounts(tl.serialization))
	fmt.Fprintf(&b, "replays checked       %d (2 per command)\n", tl.replays)
	h := tl.history
	fmt.Fprintf(&b, "history (porcupine)   %s: %d requests over %d keys (%s), checked in %v; %d commands raced, %d followed to their stored answer (%d gave up), %d contested by another body\n",
		h.verdict, h.requests, h.keys, formatCounts(h.kinds), h.took.Round(time.Millisecond),
		r.stats.raced.Load(), r.stats.followed.Load(), r.stats.followTimeouts.Load(), r.stats.contested.Load())
	fmt.Fprintf(&b, "commands topic        %d records for %d operations: %d copies injected by the test, %d re-emissions by the sweeper\n",
		tl.commandRecords, tl.commandIDs, r.injected, tl.commandRecords-tl.commandIDs-r.injected)
	fmt.Fprintf(&b, "poison record         partition %d offset %d, %d/%d command events before/behind it in its batch; stopped mid-batch: %v%s, committed offset then %v; on the dead-letter topic %d times; %d command records behind it in its partition, for %d commands found applied\n",
		r.poison.partition, r.poison.offset, r.poison.before, r.poison.behind, r.poison.stops, r.poison.missed, r.poison.committed, r.poison.deadLettered, r.poison.behindRecords, r.poison.behindApplied)
	fmt.Fprintf(&b, "results topic         %d records, %d operations, %d duplicates (at-least-once)\n", tl.resultRecords, tl.resultIDs, tl.resultDuplicates)
	fmt.Fprintf(&b, "phases                %s\n", strings.Join(r.phases, ", "))
	fmt.Fprintf(&b, "duration              %v\n", time.Since(r.start).Round(time.Second))
	cats := make([]string, 0, len(r.failures))
	for k := range r.failures {
		cats = append(cats, k)
	}
	sort.Strings(cats)
	if len(cats) == 0 {
		fmt.Fprintf(&b, "violations            none\n")
	}
	for _, k := range cats {
		fmt.Fprintf(&b, "VIOLATION             %s: %d\n", k, len(r.failures[k]))
	}
	r.t.Log("\n" + b.String())
}

// report fails the test once per category of broken expectation, with
// the first examples.
func (r *run) report() {
	r.mu.Lock()
	defer r.mu.Unlock()
	cats := make([]string, 0, len(r.failures))
	for k := range r.failures {
		cats = append(cats, k)
	}
	sort.Strings(cats)
	for _, k := range cats {
		ex := r.failures[k]
		if len(ex) > 15 {
			ex = append(ex[:15:15], fmt.Sprintf("... and %d more", len(ex)-15))
		}
		r.t.Errorf("%s: %d violations:\n  %s", k, len(r.failures[k]), strings.Join(ex, "\n  "))
	}
	if len(cats) > 0 {
		for _, p := range r.procs {
			r.t.Logf("--- last lines of %s ---\n%s", p.name, r.tail(p.logPath, 15))
		}
	}
}
