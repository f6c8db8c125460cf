package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/idemgate/idemgate/client"
)

// A payment created against `make run`'s server (here a stand-in, so
// that the example runs: use "http://127.0.0.1:8080"); the outcome is
// awaited, and a declined payment is an error that is also the recorded
// outcome.
func Example() {
	srv := newExampleServer()
	defer srv.Close()
	c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "dev-key-a"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	pay, res, err := c.CreatePayment(ctx, client.NewPayment{Amount: 1000, Currency: "EUR", Customer: "cus_1"}, client.CallOptions{})
	var incomplete *client.IncompleteError
	switch {
	case errors.Is(err, client.ErrPaymentDeclined):
		fmt.Println("declined, for good:", res.StatusCode, string(res.Body))
	case errors.As(err, &incomplete):
		// Retry later with incomplete.IdempotencyKey and the same body.
		fmt.Println("outcome unknown; key", incomplete.IdempotencyKey)
	case err != nil:
		fmt.Println("rejected:", err)
	default:
		// res.IdempotencyKey is the key the client made for the call.
		fmt.Println("payment", pay.ID, pay.Status, "replayed:", res.Replayed, "key:", len(res.IdempotencyKey), "characters")
	}
	// Output: payment pay_1 succeeded replayed: false key: 36 characters
}

// A gateway route takes any JSON body, sent byte for byte on every retry;
// the key is the caller's, so that another process can retry the same
// command after a crash. (The server is a stand-in, as in Example.)
func ExampleClient_Call() {
	srv := newExampleServer()
	defer srv.Close()
	c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "dev-key-a"})
	if err != nil {
		log.Fatal(err)
	}
	key := client.NewIdempotencyKey() // store it with the order before calling
	res, err := c.Call(context.Background(), "/v1/gateway/orders", []byte(`{"sku":"A-1","qty":2}`),
		client.CallOptions{IdempotencyKey: key, Wait: 5 * time.Second})
	var p *client.Problem
	if errors.As(err, &p) {
		fmt.Println(p.Status, p.Type, "recorded outcome:", p.Completed())
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.StatusCode, res.ContentType(), string(res.Body))
	// Output: 201 application/json {"order":"ord_1","sku":"A-1","qty":2}
}
