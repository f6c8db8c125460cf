package client

import "github.com/google/uuid"

// NewIdempotencyKey returns a fresh random key (a UUIDv4), the key a call
// uses when CallOptions.IdempotencyKey is empty. Generate it before the
// first call and store it with the request when the retry may come from
// another process (after a crash): the key is what makes it the same
// command.
func NewIdempotencyKey() string { return uuid.NewString() }
