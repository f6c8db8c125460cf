//go:build ignore

// Command main is scripts/clients.sh's check of the Go client that
// oapi-codegen generates from the served OpenAPI document (package api,
// beside it in a throwaway module): it compiles only if the client types
// the status fields and the operation's response body, and it runs the
// client against the live idemgate dev it was generated from, decoding
// each recorded body once. Usage: main <base URL> <API key> <unique tag>.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"idemgate.invalid/clientcheck/api"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: main <base URL> <API key> <unique tag>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "go client:", err)
		os.Exit(1)
	}
}

func run(base, key, tag string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := api.NewClientWithResponses(base, api.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+key)
		return nil
	}))
	if err != nil {
		return err
	}

	// A payment: its recorded body is a Payment.
	wait := api.Prefer("wait=10")
	op, err := command(ctx, c, "go-"+tag+"-ok", 1000, &wait)
	if err != nil {
		return err
	}
	if op.Response.Status != http.StatusCreated {
		return fmt.Errorf("payment recorded %d, want 201", op.Response.Status)
	}
	p, err := op.Response.Body.AsPayment()
	if err != nil {
		return err
	}
	var st api.PaymentStatus = p.Status
	if st != api.PaymentStatusSucceeded || p.Amount != 1000 || p.Currency != "EUR" || p.OperationId != op.OperationId {
		return fmt.Errorf("payment %+v", p)
	}

	// A declined one: its recorded body is a Problem.
	op, err = command(ctx, c, "go-"+tag+"-declined", 2000000, nil)
	if err != nil {
		return err
	}
	prob, err := op.Response.Body.AsProblem()
	if err != nil {
		return err
	}
	if op.Response.Status != http.StatusPaymentRequired || prob.Status != 402 || !strings.HasSuffix(prob.Type, "/payment-declined") {
		return fmt.Errorf("declined payment recorded %d %+v", op.Response.Status, prob)
	}

	// The gateway's routes are typed by their schemas.
	order := api.GatewayOrdersCreateJSONRequestBody{Sku: "sku-1", Quantity: 2}
	var _ api.GatewayOrdersCreateRequest = api.GatewayOrdersCreateRequest(order)
	fmt.Printf("go client: payment %s (%s), declined payment %s (%s)\n", p.Id, st, op.OperationId, prob.Type)
	return nil
}

// command creates a payment of amount and returns its completed
// operation. Under Prefer: wait it may answer the payment at once (201);
// else, and always for a decline, the 202 names the operation.
func command(ctx context.Context, c *api.ClientWithResponses, idemKey string, amount int, prefer *api.Prefer) (*api.Operation, error) {
	resp, err := c.CreatePaymentWithResponse(ctx, &api.CreatePaymentParams{IdempotencyKey: idemKey, Prefer: prefer},
		api.CreatePaymentJSONRequestBody{Amount: amount, Currency: "EUR", Customer: "cus_clients"})
	if err != nil {
		return nil, err
	}
	var id api.OperationID
	switch {
	case resp.JSON201 != nil:
		id = resp.JSON201.OperationId
	case resp.JSON202 != nil:
		var pending api.PendingStatus = resp.JSON202.Status
		if pending != api.PendingStatusPending {
			return nil, fmt.Errorf("202 with status %q", pending)
		}
		id = resp.JSON202.OperationId
	default:
		return nil, fmt.Errorf("POST /v1/payments answered %s: %s", resp.Status(), resp.Body)
	}
	for {
		got, err := c.GetOperationWithResponse(ctx, id)
		if err != nil {
			return nil, err
		}
		if got.JSON200 == nil {
			return nil, fmt.Errorf("GET /v1/operations/%s answered %s: %s", id, got.Status(), got.Body)
		}
		switch got.JSON200.Status {
		case api.OperationStatusCompleted:
			if got.JSON200.Response == nil {
				return nil, errors.New("a completed operation without its response")
			}
			return got.JSON200, nil
		case api.OperationStatusPending:
		default:
			return nil, fmt.Errorf("operation status %q", got.JSON200.Status)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("operation %s still pending: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
