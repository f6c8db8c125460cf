package emit

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/idemgate/idemgate/sqldb"
	"github.com/idemgate/idemgate/store"
	"github.com/idemgate/idemgate/testenv"
)

// TestStopIsNotHeldByAHungMark: the emitter is recording acknowledgements
// on a connection that hangs half-open (the database never answers, the
// link never closes) when its process stops. Run must return within its
// drain budget, not when the pool's transaction bound (a minute here)
// ends the mark: a process manager kills what outlives its grace.
func TestStopIsNotHeldByAHungMark(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs PostgreSQL")
	}
	f, url := testenv.NewDBNetFault(t, env.NewDatabase(t, store.Migrations()))
	db, err := sqldb.Open(context.Background(), url, sqldb.Options{MaxConns: 1, TxTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer db.CloseWithin(2 * time.Second) // the hung connection is not worth waiting for
	st := store.New(db, time.Minute)
	if err := st.MarkPublished(context.Background(), []string{"00000000-0000-0000-0000-000000000001"}); err != nil {
		t.Fatal(err) // the pool's one connection is open, and now idle
	}
	e := New(context.Background(), nil, "commands", st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.HalfOpen()
	e.acked <- "00000000-0000-0000-0000-000000000002"
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	// Run has taken the acknowledgement: its mark is on its way into the
	// hung connection.
	testenv.Eventually(t, 10*time.Second, "Run takes the acknowledgement", func() error {
		return testenv.Check(len(e.acked) == 0, "%d acknowledgements waiting", len(e.acked))
	})
	stopped := time.Now()
	stop()
	select {
	case <-done:
		t.Logf("Run returned %v after its context ended (drain budget %v)", time.Since(stopped).Round(time.Millisecond), drainBudget)
	case <-time.After(drainBudget + 20*time.Second):
		t.Fatalf("Run still running %v after its context ended: the mark in flight holds the stop past the drain budget (%v)",
			time.Since(stopped).Round(time.Second), drainBudget)
	}
}
