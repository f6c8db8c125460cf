package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate/client"
	"github.com/idemgate/idemgate/pgserver"
	"github.com/idemgate/idemgate/testenv"
)

// TestLiveServer runs the real server (`idemgate dev`: a private
// PostgreSQL and an in-process Kafka) as a child process and uses the SDK
// against it: first through kill -9 restarts, then for the problems of
// the contract.
func TestLiveServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs idemgate dev as a child process")
	}
	srv := startLiveServer(t)
	t.Run("kill -9 while calls are in flight", func(t *testing.T) { testKill9(t, srv) })
	t.Run("typed problems", func(t *testing.T) { testLiveProblems(t, srv) })
}

// testKill9 starts 48 concurrent callers that each create payments one
// after another and await their outcome, and kills the server with -9
// twice while they are in flight, restarting it each time on the same
// data folder and port. The SDK's retries must carry every call to its
// outcome, and the server's records must show exactly one payment per
// key: the one the call got.
func testKill9(t *testing.T, srv *liveServer) {
	counter := &countingTransport{next: http.DefaultTransport}
	c, err := client.New(client.Config{
		BaseURL:      srv.base,
		APIKey:       "dev-key-a",
		HTTPClient:   &http.Client{Transport: counter},
		Retry:        client.RetryPolicy{MaxAttempts: 1000, MaxElapsed: 90 * time.Second, BaseBackoff: 50 * time.Millisecond, MaxBackoff: time.Second},
		PollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const workers, perWorker = 48, 4
	type call struct {
		key string
		req client.NewPayment
		pay *client.Payment
		res *client.Result
		err error
	}
	calls := make([]call, workers*perWorker)
	var started, finished atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perWorker {
				i := w*perWorker + j
				cl := &calls[i]
				cl.key = fmt.Sprintf("kill9-%03d", i)
				cl.req = client.NewPayment{Amount: int64(100 + i), Currency: "EUR", Customer: fmt.Sprintf("cus_%d", i)}
				opts := client.CallOptions{IdempotencyKey: cl.key}
				if w%2 == 1 {
					opts.Wait = -1 // half the callers poll the operation instead of waiting on the POST
				}
				started.Add(1)
				cl.pay, cl.res, cl.err = c.CreatePayment(ctx, cl.req, opts)
				finished.Add(1)
			}
		}()
	}

	// Kill twice, each time while calls are in flight.
	for kill := 1; kill <= 2; kill++ {
		// Let the (re)started server answer a good number of requests.
		answered := counter.answers.Load()
		testenv.Eventually(t, 30*time.Second, "50 more answers", func() error {
			n := counter.answers.Load() - answered
			return testenv.Check(n >= 50, "%d answers", n)
		})
		inFlight := started.Load() - finished.Load()
		errsBefore := counter.failures.Load()
		srv.Kill()
		t.Logf("kill -9 #%d: %d calls in flight, %d finished", kill, inFlight, finished.Load())
		if inFlight == 0 {
			t.Fatalf("kill #%d found no call in flight", kill)
		}
		// Callers meet a dead port: the kill hit them.
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("kill #%d: a request fails", kill), func() error {
			return testenv.Check(counter.failures.Load() > errsBefore, "no request failed, the kill did not hit the callers")
		})
		srv.start(t)
	}
	wg.Wait()
	t.Logf("%d calls, %d HTTP requests, %d transport failures", len(calls), counter.requests.Load(), counter.failures.Load())

	// Every call got its payment, and the server agrees byte for byte.
	paymentOf := map[string]string{} // payment id -> key
	opOf := map[string]string{}      // operation id -> key
	for _, cl := range calls {
		if cl.err != nil {
			t.Fatalf("%s: %v", cl.key, cl.err)
		}
		res, pay := cl.res, cl.pay
		if res.StatusCode != 201 || !res.Completed || pay == nil || res.IdempotencyKey != cl.key {
			t.Fatalf("%s: result %+v payment %+v", cl.key, res, pay)
		}
		if pay.Amount != cl.req.Amount || pay.Customer != cl.req.Customer || pay.Status != "succeeded" ||
			res.Location() != "/v1/payments/"+pay.ID || res.OperationID != pay.OperationID {
			t.Fatalf("%s: payment %+v for request %+v, Location %q", cl.key, pay, cl.req, res.Location())
		}
		if other, dup := paymentOf[pay.ID]; dup {
			t.Fatalf("payment %s returned for %s and %s", pay.ID, other, cl.key)
		}
		if other, dup := opOf[pay.OperationID]; dup {
			t.Fatalf("operation %s returned for %s and %s", pay.OperationID, other, cl.key)
		}
		paymentOf[pay.ID], opOf[pay.OperationID] = cl.key, cl.key

		op, err := c.Operation(ctx, pay.OperationID)
		if err != nil {
			t.Fatalf("%s: operation: %v", cl.key, err)
		}
		if !op.Completed() || op.Response.Status != res.StatusCode || !bytes.Equal(op.Response.Body, res.Body) {
			t.Fatalf("%s: the server recorded %+v (%s), the call returned %d %s", cl.key, op, op.Response.Body, res.StatusCode, res.Body)
		}
		again, err := c.Call(ctx, "/v1/payments", mustJSON(t, cl.req), client.CallOptions{IdempotencyKey: cl.key})
		if err != nil || !again.Replayed || again.StatusCode != 201 || !bytes.Equal(again.Body, res.Body) || again.Location() != res.Location() {
			t.Fatalf("%s: replay %+v (%v) differs from the outcome %s", cl.key, again, err, res.Body)
		}
		read, err := c.GetPayment(ctx, pay.ID)
		if err != nil || read.Amount != pay.Amount || read.OperationID != pay.OperationID {
			t.Fatalf("%s: read model %+v (%v)", cl.key, read, err)
		}
	}
	// The database holds exactly these payments: one per key, no other.
	var want []string
	for id, key := range paymentOf {
		want = append(want, id+" "+calls[indexOf(key)].pay.OperationID)
	}
	sort.Strings(want)
	got := srv.query(t, `SELECT payment_id::TEXT || ' ' || operation_id::TEXT FROM payments WHERE tenant_id = 'tenant-a' ORDER BY 1`)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the payments table holds %d payments, the calls returned %d:\n%s\nvs\n%s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// testLiveProblems checks the SDK's reading of the real server's answers:
// recorded outcomes (declined, refund too large, unknown payment) and
// rejections (key reused, validation, unauthorized) as typed problems.
func testLiveProblems(t *testing.T, srv *liveServer) {
	c, err := client.New(client.Config{BaseURL: srv.base, APIKey: "dev-key-b"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	problem := func(err error, kind client.Kind, status int, completed bool) *client.Problem {
		t.Helper()
		var p *client.Problem
		if !errors.As(err, &p) || !errors.Is(err, kind) || p.Status != status || p.Completed() != completed || p.Result == nil {
			t.Fatalf("error %v (%T), want a %d %s problem, completed %v", err, err, status, kind, completed)
		}
		return p
	}

	// A declined payment: a recorded outcome, replayed byte for byte.
	declined := client.NewPayment{Amount: 2_000_000, Currency: "EUR", Customer: "cus_big"}
	_, res, err := c.CreatePayment(ctx, declined, client.CallOptions{IdempotencyKey: "declined-1"})
	problem(err, client.ErrPaymentDeclined, 402, true)
	_, again, err := c.CreatePayment(ctx, declined, client.CallOptions{IdempotencyKey: "declined-1", Wait: -1})
	if p := problem(err, client.ErrPaymentDeclined, 402, true); !p.Result.Replayed || !bytes.Equal(again.Body, res.Body) {
		t.Fatalf("replay %q, first %q", again.Body, res.Body)
	}

	// The same key with another body: rejected, nothing recorded.
	_, _, err = c.CreatePayment(ctx, client.NewPayment{Amount: 5, Currency: "EUR", Customer: "cus_big"}, client.CallOptions{IdempotencyKey: "declined-1"})
	problem(err, client.ErrKeyReused, 409, false)

	// An invalid body consumes no key: the key then serves a valid one,
	// awaited by polling only.
	_, _, err = c.CreatePayment(ctx, client.NewPayment{Amount: 0, Currency: "EUR", Customer: "c"}, client.CallOptions{IdempotencyKey: "fixed-later"})
	problem(err, client.ErrValidation, 422, false)
	pay, res, err := c.CreatePayment(ctx, client.NewPayment{Amount: 700, Currency: "EUR", Customer: "c"}, client.CallOptions{IdempotencyKey: "fixed-later", Wait: -1})
	if err != nil || res.StatusCode != 201 || !res.Completed || res.OperationID == "" || pay.Amount != 700 {
		t.Fatalf("payment %+v result %+v error %v", pay, res, err)
	}

	// Refunds: too large, and of a payment that does not exist: both
	// recorded outcomes of refunds.create.
	_, _, err = c.CreateRefund(ctx, pay.ID, client.NewRefund{Amount: 701}, client.CallOptions{})
	problem(err, client.ErrRefundExceedsPayment, 422, true)
	_, _, err = c.CreateRefund(ctx, "00000000-0000-4000-8000-000000000000", client.NewRefund{Amount: 1}, client.CallOptions{})
	problem(err, client.ErrNotFound, 404, true)
	ref, _, err := c.CreateRefund(ctx, pay.ID, client.NewRefund{Amount: 200}, client.CallOptions{})
	if err != nil || ref.Amount != 200 || ref.PaymentID != pay.ID {
		t.Fatalf("refund %+v error %v", ref, err)
	}
	read, err := c.GetPayment(ctx, pay.ID)
	if err != nil || read.RefundedAmount != 200 || len(read.Refunds) != 1 || read.Refunds[0].ID != ref.ID {
		t.Fatalf("payment %+v error %v", read, err)
	}
	if _, err := c.GetRefund(ctx, pay.ID, ref.ID); err != nil {
		t.Fatal(err)
	}

	// Reads of what does not exist, and a wrong API key.
	_, err = c.GetPayment(ctx, "00000000-0000-4000-8000-000000000000")
	problem(err, client.ErrNotFound, 404, false)
	bad, err := client.New(client.Config{BaseURL: srv.base, APIKey: "not-a-key"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = bad.CreatePayment(ctx, declined, client.CallOptions{})
	problem(err, client.ErrUnauthorized, 401, false)
}

func indexOf(key string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(key, "kill9-"))
	return n
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countingTransport counts the HTTP requests the SDK makes, those
// answered, and those that failed without an answer (the kills).
type countingTransport struct {
	next     http.RoundTripper
	requests atomic.Int64
	answers  atomic.Int64
	failures atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	resp, err := c.next.RoundTrip(r)
	if err != nil {
		c.failures.Add(1)
	} else {
		c.answers.Add(1)
	}
	return resp, err
}

// liveServer is `idemgate dev` run as a child process (testenv.Proc)
// on a data folder and a port that survive its restarts. The port is
// held by the test throughout (testenv.Port): each process serves on a
// listener on it that it inherits, connections are refused while none
// runs, and no other process can take the port between two of them.
type liveServer struct {
	*testenv.Proc
	dir, base string
}

// TestMain removes the binary the tests built (testenv.Binary).
func TestMain(m *testing.M) { testenv.Main(m) }

func startLiveServer(t *testing.T) *liveServer {
	t.Helper()
	s := &liveServer{dir: filepath.Join(testenv.DataDir(t, "client-kill9"), "data")}
	// Runs after the process's own cleanup (SIGTERM: it then stops its
	// PostgreSQL), before the folder is removed: makes sure that
	// PostgreSQL is stopped even if it did not.
	t.Cleanup(func() { testenv.StopLeftover(t, filepath.Join(s.dir, "pg")) })
	begin := time.Now()
	bin := testenv.Binary(t)
	t.Logf("idemgate built in %s", time.Since(begin).Round(time.Millisecond))
	port := testenv.NewPort(t)
	s.base = "http://" + port.Addr()
	// The in-process Kafka takes a port of the kernel's choice at each
	// start: nothing outside the process connects to it. A claim whose
	// event died with the process is re-emitted after its lease: keep it
	// short so that the test is.
	s.Proc = testenv.NewProc(t, "idemgate dev", []string{"IDEMGATE_LEASE=1s", "IDEMGATE_SWEEP_INTERVAL=200ms"},
		bin, "dev", "--data-dir", s.dir, "--addr", port.Addr())
	begin = time.Now()
	s.start(t)
	t.Logf("idemgate dev ready in %s", time.Since(begin).Round(time.Millisecond))
	return s
}

// start runs the server (again) and waits until /readyz answers 200.
func (s *liveServer) start(t *testing.T) {
	t.Helper()
	s.Restart()
	s.WaitReady(s.base, 90*time.Second)
}

// query runs SQL on the database of the server's private PostgreSQL and
// returns the rows, each a single text column.
func (s *liveServer) query(t *testing.T, sql string) []string {
	t.Helper()
	srv, ok, err := pgserver.Find(pgserver.Config{DataDir: filepath.Join(s.dir, "pg"), Logger: testenv.Quiet})
	if err != nil || !ok {
		t.Fatalf("the private PostgreSQL does not run (%v)", err)
	}
	rows, err := testenv.OpenDB(t, srv.URL()).Pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}
