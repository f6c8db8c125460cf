// Command client creates a payment and refunds part of it through the Go
// SDK, against the server of `make run`:
//
//	make run                       # in one terminal
//	go run ./examples/client       # in another
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/idemgate/idemgate/client"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "idemgate's base URL")
	apiKey := flag.String("api-key", "dev-key-a", "API key (make run prints them)")
	amount := flag.Int64("amount", 1000, "payment amount in cents (above 1000000 is declined)")
	flag.Parse()
	if err := run(*base, *apiKey, *amount); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run(base, apiKey string, amount int64) error {
	c, err := client.New(client.Config{BaseURL: base, APIKey: apiKey})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	pay, res, err := c.CreatePayment(ctx, client.NewPayment{Amount: amount, Currency: "EUR", Customer: "cus_example"}, client.CallOptions{})
	var incomplete *client.IncompleteError
	switch {
	case errors.Is(err, client.ErrPaymentDeclined):
		fmt.Printf("payment declined (recorded outcome, key %s): %s\n", res.IdempotencyKey, res.Body)
		return nil
	case errors.As(err, &incomplete):
		return fmt.Errorf("no outcome yet; retry with Idempotency-Key %s: %w", incomplete.IdempotencyKey, err)
	case err != nil:
		return err
	}
	fmt.Printf("payment %s: %d %s, status %s (HTTP %d, key %s, operation %s, replayed %v)\n",
		pay.ID, pay.Amount, pay.Currency, pay.Status, res.StatusCode, res.IdempotencyKey, res.OperationID, res.Replayed)

	ref, res, err := c.CreateRefund(ctx, pay.ID, client.NewRefund{Amount: pay.Amount / 2}, client.CallOptions{})
	if err != nil {
		return fmt.Errorf("refund: %w", err)
	}
	fmt.Printf("refund %s: %d of payment %s, status %s (HTTP %d, Location %s)\n",
		ref.ID, ref.Amount, ref.PaymentID, ref.Status, res.StatusCode, res.Location())

	read, err := c.GetPayment(ctx, pay.ID)
	if err != nil {
		return err
	}
	fmt.Printf("payment %s now: refunded %d of %d, %d refund(s)\n", read.ID, read.RefundedAmount, read.Amount, len(read.Refunds))
	return nil
}
