// Command library protects a command of its own with idemgate as a Go
// library: deposits.create credits an account inside the projector's
// transaction, so a retried deposit never credits twice. Run in dev mode:
//
//	go run ./examples/library
//	curl -X POST localhost:8080/v1/accounts/acc-1/deposits -H 'Authorization: Bearer dev-key-a' \
//	  -H 'Idempotency-Key: d-1' -H 'Content-Type: application/json' -d '{"amount":100}'
package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/config"
	"github.com/idemgate/idemgate/roles"
	"github.com/idemgate/idemgate/validate"
)

//go:embed migrations/*.sql
var migrations embed.FS

type deposit struct {
	Amount int64 `json:"amount"`
}

// ledger is the module: an operation, its validation, applier and table.
func ledger() idemgate.Module {
	tables, _ := fs.Sub(migrations, "migrations")
	return idemgate.Module{
		Name: "ledger",
		Operations: []idemgate.Operation{{
			Name:     "deposits.create",
			Path:     "/v1/accounts/{account}/deposits", // the account is the command's target
			Validate: validateDeposit,
			Apply:    idemgate.TxApplierFunc(applyDeposit),
		}},
		Migrations: tables,
	}
}

func validateDeposit(body []byte) (json.RawMessage, error) {
	m, err := validate.Object(body, "amount")
	if err != nil {
		return nil, err
	}
	amount, err := validate.PositiveInt(m, "amount", 1_000_000)
	if err != nil {
		return nil, err
	}
	return json.Marshal(deposit{Amount: amount})
}

// applyDeposit runs in the projector's transaction: the credit, the dedup
// record and the recorded 201 commit together, or not at all.
func applyDeposit(ctx context.Context, tx pgx.Tx, cmd idemgate.Command) (idemgate.Response, error) {
	var d deposit
	if err := json.Unmarshal(cmd.Request, &d); err != nil {
		return idemgate.Response{}, fmt.Errorf("%w: %v", idemgate.ErrPermanent, err)
	}
	var balance int64
	if err := tx.QueryRow(ctx, `INSERT INTO example_balances (tenant_id, account, balance) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, account) DO UPDATE SET balance = example_balances.balance + EXCLUDED.balance
RETURNING balance`, cmd.Tenant, cmd.Target, d.Amount).Scan(&balance); err != nil {
		return idemgate.Response{}, fmt.Errorf("credit: %w", err)
	}
	body, err := json.Marshal(map[string]any{"account": cmd.Target, "deposited": d.Amount, "balance": balance})
	return idemgate.Response{Status: 201, ContentType: "application/json", Body: body}, err
}

// run starts dev mode with the ledger module; the settings come from the
// environment as for idemgate itself (IDEMGATE_ADDR, DATABASE_URL, ...).
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	reg, err := idemgate.NewRegistry(ledger())
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return roles.Dev(ctx, roles.Options{Config: cfg, Registry: reg, Logger: logger},
		roles.DevConfig{DataDir: ".ledger", Banner: stdout})
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "library:", err)
		os.Exit(1)
	}
}
