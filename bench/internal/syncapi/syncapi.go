// Package syncapi is the part the synchronous baselines of `make bench`
// share (bench/syncclaim, S, and bench/syncoutbox, SO): the claim table,
// the API keys, and the HTTP handler that runs each new request's one
// SERIALIZABLE transaction (claim, then whatever else the baseline writes
// in it) and replays the stored answer on a retry.
package syncapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolSize is the baselines' pool: the size of idemgate's API pool
// (IDEMGATE_API_POOL_SIZE's default), so that neither side has more
// connections to spread its transactions over.
const PoolSize = 8

// Schema mirrors idempotency_claims (columns and indexes), plus the stored
// response that idemgate keeps in its outbox table.
const Schema = `
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

// The transaction counters, served on /metrics under the names
// bench/loadgen scrapes.
var txRetries, txGaveUp atomic.Int64

// Claim is a new request's claim, as inserted.
type Claim struct {
	Tenant, Key, ID string
	Body, Response  []byte
}

// Effect writes, in the claim's transaction and only when the request
// made the claim, what the baseline does besides the claim.
type Effect func(ctx context.Context, tx pgx.Tx, c Claim) error

// ParseKeys reads "key=tenant,...".
func ParseKeys(s string) (map[string]string, error) {
	tenants := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, t, ok := strings.Cut(kv, "=")
		if !ok || k == "" || t == "" {
			return nil, fmt.Errorf("-keys: %q is not key=tenant", kv)
		}
		tenants[k] = t
	}
	return tenants, nil
}

// Open connects a pool of PoolSize connections and creates the claim
// table and the baseline's own tables (extra).
func Open(ctx context.Context, url, extra string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database (DATABASE_URL): %w", err)
	}
	cfg.MaxConns = PoolSize
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		_, err = pool.Exec(ctx, Schema+extra)
	}
	if err != nil {
		return nil, fmt.Errorf("database (DATABASE_URL): %w", err)
	}
	return pool, nil
}

// Setup is the start a baseline's main shares: its API keys parsed (keys,
// as ParseKeys), a context that SIGINT or SIGTERM ends, and the pool on
// DATABASE_URL (as Open, with extra). done closes the pool and stops the
// signals' watch.
func Setup(keys, extra string) (ctx context.Context, done func(), pool *pgxpool.Pool, tenants map[string]string, err error) {
	if tenants, err = ParseKeys(keys); err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if pool, err = Open(ctx, os.Getenv("DATABASE_URL"), extra); err != nil {
		stop()
		return nil, nil, nil, nil, err
	}
	return ctx, func() { pool.Close(); stop() }, pool, tenants, nil
}

// Serve serves h on addr until ctx ends, then shuts the server down.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler serves GET /healthz and POST /v1/payments: a new key answers 201
// once its transaction committed; a retry with the same body replays the
// stored answer (200, Idempotent-Replayed: true), another body gets 409.
// effect may be nil (S: the claim alone).
func Handler(pool *pgxpool.Pool, tenants map[string]string, effect Effect) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "syncapi_tx_retries_total %d\nsyncapi_tx_gave_up_total %d\n", txRetries.Load(), txGaveUp.Load())
	})
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
		c := Claim{Tenant: tenant, Key: key, ID: id, Body: body, Response: []byte(`{"id":"` + id + `","status":"succeeded"}`)}
		stored, storedFP, err := claim(r.Context(), pool, c, fp[:], effect)
		switch {
		case err != nil:
			slog.Error("claim", "err", err)
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case stored == nil:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(c.Response)
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
func claim(ctx context.Context, pool *pgxpool.Pool, c Claim, fp []byte, effect Effect) (stored, storedFP []byte, err error) {
	for attempt := 0; attempt < 10; attempt++ {
		stored, storedFP = nil, nil
		err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
			var got uuid.UUID
			err := tx.QueryRow(ctx, insertClaim, c.Tenant, c.Key, c.ID, fp, c.Body, c.Response).Scan(&got)
			if errors.Is(err, pgx.ErrNoRows) {
				return tx.QueryRow(ctx, `SELECT response, fingerprint FROM sync_claims
WHERE tenant_id = $1 AND operation = 'payments.create' AND idem_key = $2`, c.Tenant, c.Key).Scan(&stored, &storedFP)
			}
			if err != nil || effect == nil {
				return err
			}
			return effect(ctx, tx, c)
		})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "40001" {
			return stored, storedFP, err
		}
		txRetries.Add(1)
	}
	txGaveUp.Add(1)
	return nil, nil, fmt.Errorf("gave up after 10 serialization failures: %w", err)
}
