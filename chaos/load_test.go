package chaos

// The clients: concurrent goroutines that send payments, refunds and
// orders (the gateway's routes), each command with its own
// Idempotency-Key and a fixed body, and retry it (same key, same or
// equivalently spelled body) until they get an answer that is not a
// transient failure. Some commands are raced by several clients, sent
// another body under their claimed key, or followed until their stored
// answer comes back; every POST is recorded in the history (post).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/idemgate/idemgate/chaos/history"
	"github.com/idemgate/idemgate/payments"
)

var apiKeys = []struct{ key, tenant string }{{"key-a", "tenant-a"}, {"key-b", "tenant-b"}}

const (
	opPayment     = "payments.create"
	opRefund      = "refunds.create"
	opOrderCreate = "orders.create" // the gateway's routes (upstream_test.go)
	opOrderCancel = "orders.cancel"
)

// orderShare is the share of the commands that go through the gateway.
const orderShare = 0.2

// command is one client command and what the clients saw of it.
type command struct {
	idx       int
	key       string
	apiKey    string
	tenant    string
	operation string
	kind      string // payment, refund, refund-pending, refund-ghost, refund-other-tenant, order, cancel, cancel-ghost
	path      string
	target    string // refunds: the payment; cancels: the order
	amount    int64  // orders: the quantity
	body, alt string // the body, and an equivalent spelling of it
	other     string // another request under the same key: idemgate's 409
	expect    int    // outcome known in advance (0: depends on ordering)

	mu          sync.Mutex
	opIDs       map[string]bool // from every 202 answer
	accepted    bool            // the key is claimed: a 202 or a stored answer was seen
	acceptedAt  time.Time
	observed    []observation // recorded outcomes seen (direct replays, operation views)
	attempts    int
	settled     bool // an outcome was seen (drain)
	firstAnswer int
}

// observation is a recorded outcome as a client saw it.
type observation struct {
	via    string // replay, operation-view
	status int
	ctype  string // "" for operation views
	loc    string
	body   []byte // compacted JSON
}

func (c *command) opID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.opIDs {
		return id
	}
	return ""
}

// answer is an HTTP response read whole.
type answer struct {
	status   int
	ctype    string
	location string
	replayed string
	body     []byte
}

func (r *run) do(method, url, apiKey, idemKey, body string) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), location: resp.Header.Get("Location"),
		replayed: resp.Header.Get("Idempotent-Replayed"), body: b}, nil
}

// post sends c's POST with body to a random serve and records it in the
// history, as a request of client (a lane of the history's picture) made
// for the reason via.
func (r *run) post(client, via string, c *command, body string, rng *rand.Rand) (answer, error) {
	call := r.hist.Begin(client, via, history.Input{Key: c.tenant + "/" + c.operation + "/" + c.key,
		Fingerprint: history.Fingerprint(c.path, []byte(body))})
	a, err := r.do("POST", r.randomServe(rng)+c.path, c.apiKey, c.key, body)
	call.End(history.Answer{Status: a.status, ContentType: a.ctype, Location: a.location, Replayed: a.replayed, Body: a.body}, err)
	return a, err
}

// randomServe is the base URL of a serve process picked at random.
func (r *run) randomServe(rng *rand.Rand) string {
	return r.serves[rng.IntN(len(r.serves))].url
}

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

func problemType(b []byte) string {
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &p)
	return p.Type
}

// paymentRef is a payment the clients saw succeed: refunds target them.
type paymentRef struct {
	id, tenant string
	amount     int64
}

// newCommand makes command i: orders through the gateway (orderShare),
// otherwise mostly payments (a third of them above the decline
// threshold), and refunds of payments seen to succeed, some of them of
// another tenant's payment or of no payment at all (404).
func (r *run) newCommand(i int, rng *rand.Rand) *command {
	c := &command{idx: i, key: fmt.Sprintf("chaos-%s-%05d", r.runID, i), opIDs: map[string]bool{}}
	k := apiKeys[rng.IntN(2)]
	c.apiKey, c.tenant = k.key, k.tenant
	if rng.Float64() < orderShare || r.upIsDown.Load() {
		return r.newOrderCommand(c, rng)
	}
	r.mu.Lock()
	var target paymentRef
	refund := len(r.acceptedPays) > 0 && rng.Float64() < 0.3
	pending := false
	if refund {
		// A payment seen to succeed, or one only accepted so far: then
		// the refund races the payment's own projection (201, or 404 when
		// it is applied first, or 422).
		if len(r.paid) > 0 && rng.IntN(2) == 0 {
			target = r.paid[rng.IntN(len(r.paid))]
		} else {
			target, pending = r.acceptedPays[rng.IntN(len(r.acceptedPays))], true
		}
	}
	r.mu.Unlock()
	if !refund {
		c.operation, c.kind, c.path = opPayment, "payment", "/v1/payments"
		c.amount = 1 + rng.Int64N(1_500_000)
		cust := fmt.Sprintf("cus_%d", rng.IntN(40))
		if rng.IntN(2) == 0 {
			desc := fmt.Sprintf("chaos order %d", i)
			c.body = fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":%q,"description":%q}`, c.amount, cust, desc)
			c.alt = fmt.Sprintf("{ \"description\" : %q,\n \"customer\":%q, \"currency\":\"\\u0045UR\", \"amount\": %d.0 }", desc, cust, c.amount)
		} else {
			c.body = fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":%q}`, c.amount, cust)
			c.alt = fmt.Sprintf(`{"customer":%q,"amount":%d.000,"currency":"EUR"}`, cust, c.amount)
		}
		c.other = fmt.Sprintf(`{"amount":%d,"currency":"EUR","customer":"cus_other"}`, c.amount)
		c.expect = 201
		if c.amount > 1_000_000 {
			c.expect = 402
		}
		return c
	}
	c.operation = opRefund
	roll := rng.Float64()
	switch {
	case roll < 0.1:
		c.kind, c.target, c.expect = "refund-ghost", uuid.NewString(), 404
		c.amount = 1 + rng.Int64N(1000)
	case roll < 0.2:
		c.kind, c.target, c.expect = "refund-other-tenant", target.id, 404
		for _, k := range apiKeys {
			if k.tenant != target.tenant {
				c.apiKey, c.tenant = k.key, k.tenant
			}
		}
		c.amount = 1 + rng.Int64N(max(1, target.amount))
	default:
		c.kind, c.target = "refund", target.id
		if pending {
			c.kind = "refund-pending"
		}
		for _, k := range apiKeys {
			if k.tenant == target.tenant {
				c.apiKey, c.tenant = k.key, k.tenant
			}
		}
		// Mostly small refunds, so that a payment takes many (and a
		// refund applied twice would fit, and show); one in ten asks for
		// up to the whole amount, and may exceed what is left (422).
		if rng.IntN(10) == 0 {
			c.amount = 1 + rng.Int64N(max(1, target.amount))
		} else {
			c.amount = 1 + rng.Int64N(max(1, target.amount/25))
		}
	}
	c.path = "/v1/payments/" + c.target + "/refunds"
	c.body = fmt.Sprintf(`{"amount":%d}`, c.amount)
	c.alt = fmt.Sprintf("{ \"amount\" : %d.0 }\n", c.amount)
	c.other = fmt.Sprintf(`{"amount":%d}`, c.amount+1)
	return c
}

// newOrderCommand makes an order command: mostly new orders (the orders
// service answers 201); a quarter, once orders were seen created, cancel
// one of them (200 for the first cancel applied, 409 from the service for
// the next ones), and one cancel in ten names no order (404).
func (r *run) newOrderCommand(c *command, rng *rand.Rand) *command {
	r.mu.Lock()
	cancel := len(r.orders) > 0 && rng.IntN(4) == 0
	target := ""
	if cancel {
		target = r.orders[rng.IntN(len(r.orders))]
	}
	r.mu.Unlock()
	if !cancel {
		c.operation, c.kind, c.path, c.expect = opOrderCreate, "order", "/v1/orders", http.StatusCreated
		c.amount = 1 + rng.Int64N(20)
		sku := fmt.Sprintf("chaos-%d", c.idx)
		if rng.IntN(2) == 0 {
			note := "chaos run " + r.runID
			c.body = fmt.Sprintf(`{"sku":%q,"quantity":%d,"note":%q}`, sku, c.amount, note)
			c.alt = fmt.Sprintf("{\n  \"note\": %q, \"quantity\": %d.0,\n  \"\\u0073ku\": %q }", note, c.amount, sku)
		} else {
			c.body = fmt.Sprintf(`{"sku":%q,"quantity":%d}`, sku, c.amount)
			c.alt = fmt.Sprintf(`{ "quantity" : %d.00 , "sku" : %q }`, c.amount, sku)
		}
		c.other = fmt.Sprintf(`{"sku":%q,"quantity":%d}`, sku, c.amount+1)
		return c
	}
	c.operation, c.kind, c.target = opOrderCancel, "cancel", target
	if rng.IntN(10) == 0 {
		c.kind, c.target, c.expect = "cancel-ghost", fmt.Sprintf("ord-%d", 1_000_000+c.idx), http.StatusNotFound
	}
	c.path = "/v1/orders/" + c.target + "/cancel"
	c.body = fmt.Sprintf(`{"reason":"chaos %d"}`, c.idx)
	c.alt = fmt.Sprintf("{ \"reason\" : \"chaos\\u0020%d\" }\n", c.idx)
	c.other = fmt.Sprintf(`{"reason":"another reason %d"}`, c.idx)
	return c
}

// errGiveUp ends a submission that met a non-retryable answer.
var errGiveUp = errors.New("not retryable")

// submit sends c until it is accepted (202) or answered with its recorded
// outcome, retrying the same key with the same body (sometimes spelled
// otherwise) on connection errors, time-outs and 5xx, to any instance.
func (r *run) submit(c *command, client string, rng *rand.Rand, deadline time.Time) error {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepted after %d attempts", attempt)
		}
		body := c.body
		if attempt > 0 && rng.Float64() < 0.3 {
			body = c.alt
			r.stats.respelled.Add(1)
		}
		if attempt > 0 {
			r.stats.retries.Add(1)
		}
		c.mu.Lock()
		c.attempts++
		c.mu.Unlock()
		via := "submit"
		if attempt > 0 {
			via = "retry"
		}
		a, err := r.post(client, via, c, body, rng)
		if err != nil {
			r.stats.transportErrors.Add(1)
		} else {
			if attempt == 0 {
				c.mu.Lock()
				c.firstAnswer = a.status
				c.mu.Unlock()
			}
			done, err := r.record(c, a, "submit")
			if done || err != nil {
				return err
			}
		}
		time.Sleep(backoff + time.Duration(rng.Int64N(int64(backoff)))) // the client's backoff, its behaviour
		backoff = min(backoff*2, time.Second)
	}
}

// record files an answer to a POST of c. done: the command needs no more
// submitting; err: the answer breaks the contract.
func (r *run) record(c *command, a answer, via string) (done bool, err error) {
	r.countStatus(a.status)
	switch a.status {
	case http.StatusAccepted:
		id, ok := strings.CutPrefix(a.location, "/v1/operations/")
		want := `{"operation_id":"` + id + `","status":"pending"}`
		if !ok || uuid.Validate(id) != nil || string(a.body) != want {
			r.fail("contract", "%s %s: 202 with Location %q body %s", via, c.key, a.location, a.body)
			return true, errGiveUp
		}
		c.mu.Lock()
		c.opIDs[id] = true
		first := !c.accepted
		if first {
			c.accepted, c.acceptedAt = true, time.Now()
		}
		c.mu.Unlock()
		r.stats.accepted202.Add(1)
		r.mu.Lock()
		r.acks = append(r.acks, time.Now())
		r.mu.Unlock()
		if first && c.operation == opPayment && c.expect == http.StatusCreated {
			r.mu.Lock()
			r.acceptedPays = append(r.acceptedPays, paymentRef{id: payments.PaymentID(id), tenant: c.tenant, amount: c.amount})
			r.mu.Unlock()
		}
		return true, nil
	case http.StatusConflict:
		if c.operation == opOrderCancel && a.replayed == "true" {
			return r.stored(c, a) // the orders service's own 409, recorded
		}
		r.stats.conflicts.Add(1)
		r.fail("I4: 409 on an equivalent retry", "%s %s (%s): %s", via, c.key, c.kind, a.body)
		return true, errGiveUp
	case http.StatusOK, http.StatusCreated, http.StatusPaymentRequired, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusInternalServerError:
		pt := problemType(a.body)
		if a.status == http.StatusInternalServerError && !strings.HasSuffix(pt, "/processing-failed") {
			r.stats.unexpected500.Add(1)
			r.fail("500 other than a stored /processing-failed", "%s %s: %s", via, c.key, a.body)
			return false, nil // retry: nothing was recorded for it
		}
		if a.replayed != "true" || strings.HasSuffix(pt, "/validation-failed") {
			r.fail("contract", "%s %s: %d not a replay (Idempotent-Replayed=%q): %s", via, c.key, a.status, a.replayed, a.body)
			return true, errGiveUp
		}
		return r.stored(c, a)
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		if a.status == http.StatusBadGateway && a.replayed == "true" {
			return r.stored(c, a) // a stored /upstream-failed: the checks report it
		}
		return false, nil
	default:
		r.fail("contract", "%s %s: unexpected %d: %s", via, c.key, a.status, a.body)
		return true, errGiveUp
	}
}

// stored files a replayed recorded outcome.
func (r *run) stored(c *command, a answer) (bool, error) {
	r.stats.storedDirect.Add(1)
	r.observe(c, observation{via: "replay", status: a.status, ctype: a.ctype, loc: a.location, body: compact(a.body)})
	c.mu.Lock()
	if !c.accepted {
		c.accepted, c.acceptedAt = true, time.Now()
	}
	c.mu.Unlock()
	return true, nil
}

func (r *run) countStatus(status int) {
	r.mu.Lock()
	r.statuses[status]++
	r.mu.Unlock()
}

// observe files a recorded outcome seen by a client; a succeeded payment
// becomes a refund target.
func (r *run) observe(c *command, o observation) {
	c.mu.Lock()
	c.observed = append(c.observed, o)
	c.settled = true
	first := len(c.observed) == 1
	c.mu.Unlock()
	if first && c.operation == opOrderCreate && o.status == http.StatusCreated {
		var ord struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(o.body, &ord) == nil && ord.ID != "" {
			r.mu.Lock()
			r.orders = append(r.orders, ord.ID)
			r.mu.Unlock()
		}
	}
	if first && c.operation == opPayment && o.status == http.StatusCreated {
		var p struct {
			ID     string `json:"id"`
			Amount int64  `json:"amount"`
		}
		if json.Unmarshal(o.body, &p) == nil && p.ID != "" {
			r.mu.Lock()
			r.paid = append(r.paid, paymentRef{id: p.ID, tenant: c.tenant, amount: p.Amount})
			r.mu.Unlock()
		}
	}
}

// poll asks GET /v1/operations/{id} once; true when the outcome is there.
func (r *run) poll(c *command, rng *rand.Rand) bool {
	id := c.opID()
	if id == "" {
		return false
	}
	a, err := r.do("GET", r.randomServe(rng)+"/v1/operations/"+id, c.apiKey, "", "")
	if err != nil || a.status != http.StatusOK {
		if err == nil && a.status != http.StatusServiceUnavailable {
			r.fail("contract", "GET operation %s of %s: %d %s", id, c.key, a.status, a.body)
		}
		return false
	}
	var v struct {
		OperationID string `json:"operation_id"`
		Status      string `json:"status"`
		Response    *struct {
			Status int             `json:"status"`
			Body   json.RawMessage `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(a.body, &v); err != nil || v.OperationID != id {
		r.fail("contract", "GET operation %s: %s", id, a.body)
		return false
	}
	if v.Status != "completed" || v.Response == nil {
		return false
	}
	r.observe(c, observation{via: "operation-view", status: v.Response.Status, body: compact(v.Response.Body)})
	return true
}

// load runs the clients: commands are released at an even pace over the
// load duration and shared by cfg.clients goroutines.
func (r *run) load(n int, start time.Time, duration time.Duration, clients int, seed uint64) {
	tickets := make(chan int)
	go func() {
		defer close(tickets)
		for i := 0; i < n; i++ {
			at := start.Add(time.Duration(int64(duration) * int64(i) / int64(max(1, n))))
			time.Sleep(time.Until(at)) // the load's schedule, not a wait
			tickets <- i
		}
	}()
	r.runClients(tickets, clients, seed, "client")
}

// The shares of the commands that exercise the history's model: raced
// (their first submission is sent at once by 2 or 3 clients, in both
// spellings), followed (a client of its own POSTs it again until the
// stored answer comes back), and contested (another request is sent
// under the key once it is claimed: 409).
const (
	raceShare    = 0.25
	followShare  = 0.25
	contestShare = 0.10
)

// runClients has clients goroutines take command indexes from tickets;
// lane names them in the history.
func (r *run) runClients(tickets <-chan int, clients int, seed uint64, lane string) {
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := fmt.Sprintf("%s-%02d", lane, w)
			rng := rand.New(rand.NewPCG(seed, uint64(w)+1))
			for i := range tickets {
				c := r.newCommand(i, rng)
				r.mu.Lock()
				r.cmds = append(r.cmds, c)
				r.mu.Unlock()
				if err := r.race(c, client, rng); err != nil {
					if !errors.Is(err, errGiveUp) {
						r.fail("availability", "%s (%s): %v", c.key, c.kind, err)
					}
					continue
				}
				if rng.Float64() < contestShare {
					r.contest(c, client, "another body", rng)
				}
				// Some clients send the same command again at once, spelled
				// otherwise: 202 (same operation) or the recorded outcome,
				// never 409.
				if rng.Float64() < 0.15 {
					r.stats.respelled.Add(1)
					r.stats.duplicates.Add(1)
					a, err := r.post(client, "respelled duplicate", c, c.alt, rng)
					if err == nil {
						_, _ = r.record(c, a, "respelled duplicate")
					}
				}
				if rng.Float64() < followShare {
					r.follow(c, fmt.Sprintf("follow-%05d", c.idx), rng.Uint64()) // a lane of its own: followers overlap
				}
			}
		}()
	}
	wg.Wait()
}

// race submits c: from this client alone, or, for raceShare of the
// commands, from 2 or 3 clients at once, one of them with the other
// spelling first. Each retries until its request is accepted or
// answered with the stored outcome; the first error is returned.
func (r *run) race(c *command, client string, rng *rand.Rand) error {
	deadline := time.Now().Add(r.cfg.acceptWithin)
	if rng.Float64() >= raceShare {
		return r.submit(c, client, rng, deadline)
	}
	n := 2 + rng.IntN(2)
	r.stats.raced.Add(1)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := 0; k < n; k++ {
		wg.Add(1)
		seed := rng.Uint64()
		go func() {
			defer wg.Done()
			name := client
			if k > 0 {
				name = fmt.Sprintf("%s-race%d", client, k)
			}
			errs[k] = r.submit(c, name, rand.New(rand.NewPCG(seed, uint64(k))), deadline)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// contest sends another request (c.other) under c's key, claimed by c:
// idemgate's 409 (a transport error or a 503 is retried a few times; the
// history checks whatever came back).
func (r *run) contest(c *command, client, via string, rng *rand.Rand) {
	r.stats.contested.Add(1)
	for attempt := 0; attempt < 3; attempt++ {
		a, err := r.post(client, via, c, c.other, rng)
		if err != nil || a.status >= 500 {
			time.Sleep(100 * time.Millisecond) // the client's backoff, its behaviour
			continue
		}
		r.countStatus(a.status)
		if a.status != http.StatusConflict || a.replayed == "true" {
			r.fail("409 for another request under a used key", "%s (%s): %s got %d (replayed %q): %s", c.key, c.kind, via, a.status, a.replayed, a.body)
		}
		return
	}
}

// follow has a client of its own POST c again (either spelling) until the
// stored answer comes back, in the background: 202 with c's operation
// until then, never afterwards.
func (r *run) follow(c *command, client string, seed uint64) {
	r.stats.followed.Add(1)
	r.followers.Add(1)
	go func() {
		defer r.followers.Done()
		rng := rand.New(rand.NewPCG(seed, 7))
		deadline := time.Now().Add(r.cfg.acceptWithin)
		backoff := 250 * time.Millisecond
		for time.Now().Before(deadline) {
			time.Sleep(backoff + time.Duration(rng.Int64N(int64(backoff)))) // the client's backoff, its behaviour
			backoff = min(backoff*2, 2*time.Second)
			body := c.body
			if rng.IntN(2) == 0 {
				body = c.alt
			}
			a, err := r.post(client, "follow", c, body, rng)
			switch {
			case err != nil, a.status >= 500 && a.replayed != "true":
				continue // not answered: again
			case a.status == http.StatusAccepted:
				_, _ = r.record(c, a, "follow")
			default: // the stored answer, or an answer that the record reports
				_, _ = r.record(c, a, "follow")
				return
			}
		}
		r.stats.followTimeouts.Add(1)
	}()
}

// pollWhileLoading watches pending payments through the API, so that
// succeeded payments become refund targets, until stop closes.
func (r *run) pollWhileLoading(stop <-chan struct{}, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 999))
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		var pending []*command
		for _, c := range r.cmds {
			c.mu.Lock()
			if !c.settled && len(c.opIDs) > 0 {
				pending = append(pending, c)
			}
			c.mu.Unlock()
		}
		r.mu.Unlock()
		for i := 0; i < 8 && len(pending) > 0; i++ {
			j := rng.IntN(len(pending))
			c := pending[j]
			pending = append(pending[:j], pending[j+1:]...)
			if !r.poll(c, rng) || rng.IntN(3) != 0 {
				continue
			}
			// A client retrying a command that has completed, while the
			// chaos goes on: it gets the stored response.
			body := c.body
			if rng.IntN(2) == 0 {
				body = c.alt
			}
			if rng.IntN(4) == 0 {
				r.contest(c, "poller", "another body, late", rng)
				continue
			}
			r.stats.lateRetries.Add(1)
			if a, err := r.post("poller", "late retry", c, body, rng); err == nil {
				_, _ = r.record(c, a, "late retry")
			}
		}
	}
}
