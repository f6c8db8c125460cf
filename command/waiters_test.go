package command

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// TestWaitIsWokenByTheResultsTopic: serve follows the results topic only
// while a request waits (Prefer: wait), and a result event on it wakes
// the request. Nothing else wakes it here: no WatchWaiters runs. With
// nobody waiting, the follower stops (after followIdle) and starts again
// for the next waiter.
func TestWaitIsWokenByTheResultsTopic(t *testing.T) {
	defer func(d time.Duration) { followIdle = d }(followIdle)
	followIdle = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := testenv.OpenDB(t, env.NewDatabase(t, store.Migrations()))
	opts := testenv.KafkaOptions(t, env.Kafka(t))
	topic := "results-" + testenv.Random(4)
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	n := newNotes(t, db, "")
	followed := make(chan error, 1)
	go func() { followed <- n.api.FollowResults(ctx, opts, topic) }()
	if n.api.waiters.following.Load() {
		t.Fatal("the results topic is followed with nobody waiting")
	}

	for round := range 2 {
		key := fmt.Sprintf("k-%d", round)
		if code, body := n.post(t, key, false); code != 202 {
			t.Fatalf("%d %s, want 202", code, body)
		}
		cmd := n.emitter.cmds[round]
		// A request waits for the note's outcome; the follower starts.
		type answer struct {
			code int
			body string
		}
		waited := make(chan answer, 1)
		go func() {
			code, body := n.post(t, key, true)
			waited <- answer{code, body}
		}()
		testenv.Eventually(t, 10*time.Second, "the request waits and the results topic is followed", func() error {
			return testenv.Check(!n.api.waiters.empty() && n.api.waiters.following.Load(),
				"waiting %v, following %v", !n.api.waiters.empty(), n.api.waiters.following.Load())
		})
		resp := idemgate.Response{Status: 201, ContentType: "application/json", Body: []byte(`{"id":"note-1"}`)}
		if _, err := n.st.RecordOnce(ctx, "idemgate", cmd, resp); err != nil {
			t.Fatal(err)
		}
		ev, err := events.CommandCompleted(cmd, resp, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// The follower reads from the end of the topic as of its start,
		// which may come after a first send: send again until it wakes.
		var got answer
		testenv.Eventually(t, 10*time.Second, "the waiting request woken by the result event", func() error {
			if err := admin.ProduceSync(ctx, ev.Record(topic, []byte(cmd.OperationID))).FirstErr(); err != nil {
				return err
			}
			select {
			case got = <-waited:
				return nil
			case <-time.After(200 * time.Millisecond): // a poll interval: the event may be read later
				return errors.New("not answered")
			}
		})
		if got.code != 201 || got.body != `{"id":"note-1"}` {
			t.Fatalf("round %d: the waiting request got %d %s, want the outcome", round, got.code, got.body)
		}
		testenv.Eventually(t, 10*time.Second, "the follower stops once nobody waits", func() error {
			return testenv.Check(n.api.waiters.empty() && !n.api.waiters.following.Load(), "still following")
		})
	}
	cancel()
	if err := <-followed; err != nil {
		t.Fatalf("FollowResults: %v", err)
	}
}
