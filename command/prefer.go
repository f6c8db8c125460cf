package command

import (
	"context"
	"errors"

	"github.com/idemgate/idemgate"
	"strconv"
	"strings"
	"time"
)

// MaxWait caps Prefer: wait (RFC 7240), in seconds.
const MaxWait = 30

// preferWait reads the wait preference of Prefer headers: the number of
// seconds the client is willing to wait for the outcome (0 when absent or
// unreadable; at most MaxWait).
func preferWait(values []string) int {
	for _, v := range values {
		for _, pref := range strings.Split(v, ",") {
			name, val, ok := strings.Cut(strings.TrimSpace(strings.SplitN(pref, ";", 2)[0]), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
			if errors.Is(err, strconv.ErrRange) && n > 0 {
				return MaxWait // more seconds than an int holds: capped like any long wait
			}
			if err != nil || n <= 0 {
				return 0
			}
			return min(n, MaxWait)
		}
	}
	return 0
}

// awaitResponse waits until the command has a recorded response, or the
// wait or the request ends, or the process starts shutting down (Drain):
// then nil, and the caller answers the pending 202. It reads the database
// once to start with and once per wake-up (see waiters), never in a loop.
func (a *API) awaitResponse(ctx context.Context, tenant, operationID string, wait time.Duration) *idemgate.Response {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	wake, remove := a.waiters.add(operationID)
	defer remove()
	for {
		qctx, qcancel := context.WithTimeout(ctx, a.cfg.DBTimeout)
		v, found, err := a.cfg.Store.Command(qctx, tenant, operationID)
		qcancel()
		if err == nil && found && v.Response != nil {
			return v.Response
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.draining:
			return nil
		case <-wake:
		}
	}
}
