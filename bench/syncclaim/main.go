// Command syncclaim is the benchmark's baseline S: the smallest synchronous
// idempotency middleware that keeps the same promise as idemgate's 202 (a
// durable claim per tenant and key, the first answer replayed on a retry).
// It exists so that idemgate's figures are read as ratios against it,
// measured on the same machine in the same run (scripts/bench.sh).
//
// Usage: DATABASE_URL=... syncclaim -addr 127.0.0.1:8081 -keys key=tenant
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schema mirrors idempotency_claims (columns and indexes), plus the stored
// response that idemgate keeps in its outbox table.
const schema = `
CREATE TABLE IF NOT EXISTS sync_claims (
    tenant_id TEXT NOT NULL, operation TEXT NOT NULL, idem_key TEXT NOT NULL,
    operation_id UUID NOT NULL, fingerprint BYTEA NOT NULL, state TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '', request BYTEA NOT NULL, response BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(), lease_until TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL, emit_attempts INT NOT NULL DEFAULT 0, completed_at TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, operation, idem_key));
CREATE UNIQUE INDEX IF NOT EXISTS sync_claims_operation_id ON sync_claims (operation_id);
CREATE INDEX IF NOT EXISTS sync_claims_lease ON sync_claims (state, lease_until);
CREATE INDEX IF NOT EXISTS sync_claims_expiry ON sync_claims (expires_at);`

const insertClaim = `
INSERT INTO sync_claims (tenant_id, operation, idem_key, operation_id, fingerprint, state, request, response,
    lease_until, expires_at, completed_at)
VALUES ($1, 'payments.create', $2, $3, $4, 'COMPLETED', $5, $6, now(), now() + INTERVAL '24 hours', now())
ON CONFLICT (tenant_id, operation, idem_key) DO NOTHING
RETURNING operation_id`

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	keys := flag.String("keys", "bench-key=tenant-bench", "API keys: key=tenant,...")
	flag.Parse()
	tenants := map[string]string{}
	for _, kv := range strings.Split(*keys, ",") {
		k, t, ok := strings.Cut(kv, "=")
		if !ok || k == "" || t == "" {
			fail(fmt.Errorf("-keys: %q is not key=tenant", kv))
		}
		tenants[k] = t
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err == nil {
		_, err = pool.Exec(ctx, schema)
	}
	if err != nil {
		fail(fmt.Errorf("database (DATABASE_URL): %w", err))
	}
	defer pool.Close()
	srv := &http.Server{Addr: *addr, Handler: handler(pool, tenants), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fail(err)
	}
}

func handler(pool *pgxpool.Pool, tenants map[string]string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("POST /v1/payments", func(w http.ResponseWriter, r *http.Request) {
		tenant, ok := tenants[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if key == "" || len(key) > 255 || err != nil || !json.Valid(body) {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		fp := sha256.Sum256(body)
		id := uuid.NewString()
		created := []byte(`{"id":"` + id + `","status":"succeeded"}`)
		stored, storedFP, err := claim(r.Context(), pool, tenant, key, id, fp[:], body, created)
		switch {
		case err != nil:
			slog.Error("claim", "err", err)
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case stored == nil:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(created)
		case !bytes.Equal(storedFP, fp[:]):
			http.Error(w, "idempotency key reused", http.StatusConflict)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			_, _ = w.Write(stored)
		}
	})
	return mux
}

// claim runs the one SERIALIZABLE transaction of a request, retried on a
// serialization failure. stored is nil when this request made the claim.
func claim(ctx context.Context, pool *pgxpool.Pool, tenant, key, id string, fp, body, resp []byte) (stored, storedFP []byte, err error) {
	for attempt := 0; attempt < 10; attempt++ {
		stored, storedFP = nil, nil
		err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
			var got uuid.UUID
			err := tx.QueryRow(ctx, insertClaim, tenant, key, id, fp, body, resp).Scan(&got)
			if errors.Is(err, pgx.ErrNoRows) {
				return tx.QueryRow(ctx, `SELECT response, fingerprint FROM sync_claims
WHERE tenant_id = $1 AND operation = 'payments.create' AND idem_key = $2`, tenant, key).Scan(&stored, &storedFP)
			}
			return err
		})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "40001" {
			return stored, storedFP, err
		}
	}
	return nil, nil, fmt.Errorf("gave up after 10 serialization failures: %w", err)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "syncclaim:", err)
	os.Exit(1)
}
