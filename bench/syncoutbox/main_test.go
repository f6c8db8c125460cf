package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/bench/internal/syncapi"
	"github.com/idemgate/idemgate/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// SO keeps the promise the benchmark compares idemgate with: one claim per
// key, its payment and its outbox row in the same transaction, the first
// answer replayed, and the event on Kafka once the row is marked sent.
func TestOneTransactionPerKeyAndItsEventOnKafka(t *testing.T) {
	dbURL := env.NewDatabase(t)
	brokers := env.Kafka(t)
	topic := "so.test-" + testenv.Random(4)
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := syncapi.Open(ctx, dbURL, schema)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	if err := createTopic(ctx, kc, topic); err != nil {
		t.Fatal(err)
	}
	relayed := make(chan struct{})
	go func() { defer close(relayed); relay(ctx, pool, kc) }()
	t.Cleanup(func() { cancel(); <-relayed; kc.Close(); pool.Close() })
	srv := httptest.NewServer(syncapi.Handler(pool, map[string]string{"k": "tenant-t"}, effect))
	t.Cleanup(srv.Close)

	post := func(key, body string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/payments", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer k")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	const body = `{"amount":1000,"currency":"EUR","customer":"cus_1"}`
	var mu sync.Mutex
	statuses := map[int]int{}
	var created string
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			code, _, b := post("key-1", body)
			mu.Lock()
			defer mu.Unlock()
			statuses[code]++
			if code == http.StatusCreated {
				created = b
			}
		})
	}
	wg.Wait()
	if statuses[http.StatusCreated] != 1 || statuses[http.StatusOK] != 15 {
		t.Fatalf("16 concurrent requests with one key: statuses %v, want one 201 and 15 replays", statuses)
	}
	code, h, replay := post("key-1", body)
	if code != http.StatusOK || h.Get("Idempotent-Replayed") != "true" || replay != created {
		t.Fatalf("retry: %d %q %s, want 200, Idempotent-Replayed and %s", code, h.Get("Idempotent-Replayed"), replay, created)
	}
	if code, _, _ := post("key-1", `{"amount":2000,"currency":"EUR","customer":"cus_1"}`); code != http.StatusConflict {
		t.Fatalf("the key with another body: %d, want 409", code)
	}
	var answer struct{ ID string }
	if err := json.Unmarshal([]byte(created), &answer); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]int{"sync_claims": 1, "so_payments": 1, "so_outbox": 1} {
		if n := count(t, pool, "SELECT count(*) FROM "+table); n != want {
			t.Errorf("%s: %d rows, want %d", table, n, want)
		}
	}

	testenv.Eventually(t, 10*time.Second, "the outbox row marked sent", func() error {
		n := count(t, pool, "SELECT count(*) FROM so_outbox WHERE sent_at IS NOT NULL AND operation_id = $1", answer.ID)
		return testenv.Check(n == 1, "%d outbox rows sent", n)
	})
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var events []*kgo.Record
	testenv.Eventually(t, 10*time.Second, "the event on Kafka", func() error {
		fctx, fcancel := context.WithTimeout(ctx, time.Second)
		defer fcancel()
		consumer.PollFetches(fctx).EachRecord(func(r *kgo.Record) { events = append(events, r) })
		return testenv.Check(len(events) > 0, "no event yet")
	})
	var ev struct {
		OperationID string `json:"operation_id"`
	}
	if len(events) != 1 || string(events[0].Key) != "tenant-t/key-1" || json.Unmarshal(events[0].Value, &ev) != nil || ev.OperationID != answer.ID {
		t.Fatalf("events %d, the first keyed %q: %s; want one, keyed tenant-t/key-1, for operation %s", len(events), events[0].Key, events[0].Value, answer.ID)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
