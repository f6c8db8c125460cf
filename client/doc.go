// Package client is the Go SDK of idemgate: it sends commands (POSTs with an
// Idempotency-Key), retries them safely, and waits for their outcome.
//
// # Why a client
//
// idemgate makes a POST safe to repeat: the same Idempotency-Key with the
// same body is one command, whose recorded outcome every retry gets back
// byte for byte. The SDK turns that contract into a single call: it keeps
// the key and the exact body bytes of a command, repeats the request after
// failures of the infrastructure, and waits for the command's outcome
// (Prefer: wait on the POST, then polling the operation it was given).
//
//	c, err := client.New(client.Config{BaseURL: "http://127.0.0.1:8080", APIKey: "dev-key-a"})
//	...
//	pay, res, err := c.CreatePayment(ctx, client.NewPayment{Amount: 1000, Currency: "EUR", Customer: "cus_1"}, client.CallOptions{})
//	// res.IdempotencyKey is the key used: keep it to retry the same command later.
//
// # Configuration
//
// A Client is built from a Config struct (not functional options): zero
// fields take the defaults documented on each field, and Validate reports
// settings that cannot work. Per call settings (the key, the wait, extra
// headers) go in CallOptions. A Client is safe for concurrent use.
//
// # What is retried
//
// A retry repeats the request with the same Idempotency-Key and the same
// body bytes, after an exponential backoff with full jitter (a random delay
// in [0, min(MaxBackoff, BaseBackoff·2^(n-1))] before retry n), and never
// earlier than a Retry-After header asks (delta-seconds or an HTTP date).
// Exactly these answers are retried:
//
//   - transport failures: the connection could not be made, was reset or
//     closed before a complete answer, or an attempt outlived
//     Config.AttemptTimeout (the server may or may not have received the
//     request; the key makes the repetition safe);
//   - 429, 502, 503 and 504 answers that are not a command's recorded
//     outcome, that is without an Idempotent-Replayed: true or a
//     Preference-Applied header, and not a problem of type upstream-failed
//     or processing-failed (only ever recorded outcomes). These come from
//     idemgate's own "unavailable" answer (nothing was recorded), a rate
//     limiter or a proxy in front of it. Were one of them a recorded
//     outcome after all, the retry would only get it again, replayed.
//
// Nothing else is retried: every other 4xx (the request itself is wrong),
// 500 (a server fault that a repetition would only repeat), and any
// recorded outcome, whatever its status (a replayed 502 upstream-failed is
// the command's final answer). Reads (GET) follow the same rule. Retries
// stop after Retry.MaxAttempts attempts or Retry.MaxElapsed, whichever
// comes first; the error then says so (ErrRetriesExhausted) and carries the
// key to use for a later retry (see IncompleteError).
//
// # Outcomes and errors
//
// A command accepted by idemgate always ends with a recorded outcome. The
// SDK returns every final HTTP answer as a *Result (status, headers, raw
// body, whether it was replayed, the operation id). An answer of status
// 400 or more is also returned as the error, a *Problem that carries the
// same Result: this holds for rejections before the command was accepted
// (401, 422 validation-failed, 409 idempotency-key-reused: nothing was
// recorded) and equally for business outcomes the server recorded (402
// payment-declined, 422 refund-exceeds-payment, 404 for an unknown
// payment, 500 processing-failed, 502 upstream-failed). Result.Completed
// (and Problem.Completed) tells the two apart: true means the command was
// applied and this is its outcome for good; retrying the key replays it.
// Test for a kind of problem with errors.Is (errors.Is(err,
// client.ErrPaymentDeclined)) and read its fields with errors.As.
//
// When no final answer could be had (retries exhausted, the context ended,
// or MaxAwait passed while the command was pending) the error is an
// *IncompleteError holding the idempotency key and, when the command was
// seen accepted, its operation id: calling again with that key and the same
// body resumes the same command, never a second one.
package client
