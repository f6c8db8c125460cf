package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/idemgate/idemgate/internal/retry"
)

// Client talks to one idemgate server with one API key. Build it with
// New; it is safe for concurrent use.
type Client struct {
	cfg  Config
	base string // BaseURL without a trailing slash
	// pause is retry.Sleep; a test replaces it to see each wait the client
	// makes (Retry-After, backoff, polls) without waiting for the clock.
	pause func(context.Context, time.Duration) error
}

// New returns a client for cfg, after applying its defaults and validating
// it.
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), pause: retry.Sleep}, nil
}

// CallOptions are the settings of one command call.
type CallOptions struct {
	// IdempotencyKey names the command: a bare token or an sf-string,
	// 1 to 255 visible ASCII characters. Empty: the SDK generates a
	// UUIDv4 (see NewIdempotencyKey) and returns it in
	// Result.IdempotencyKey and IncompleteError.IdempotencyKey. Reuse it,
	// with the same body, to retry the same command later.
	IdempotencyKey string
	// Wait overrides Config.Wait for this call (0 keeps it, negative
	// sends no Prefer header).
	Wait time.Duration
	// NoAwait returns the first answer even when it is a 202 (the command
	// accepted, its outcome pending): Result.Pending() then holds.
	NoAwait bool
	// Header adds headers to the request (e.g. for a gateway route), or
	// replaces the SDK's Accept and User-Agent. Authorization,
	// Idempotency-Key, Content-Type and Prefer are the SDK's own and
	// cannot be overridden.
	Header http.Header
}

// command is one command call: what every attempt resends unchanged.
type command struct {
	path   string
	body   []byte
	key    string
	header http.Header
	wait   time.Duration // Prefer: wait; 0: none
}

// Call sends body (JSON, sent as is) to path (e.g. "/v1/payments", or a
// gateway route) as a command, retries it on failures of the
// infrastructure, and waits for its outcome.
//
// On a final answer, the *Result is returned; if its status is 400 or
// more, the error is a *Problem carrying the same Result. Without a final
// answer, the error is an *IncompleteError and the Result is nil.
func (c *Client) Call(ctx context.Context, path string, body []byte, opts CallOptions) (*Result, error) {
	key := opts.IdempotencyKey
	if key == "" {
		key = NewIdempotencyKey()
	} else if err := checkKey(key); err != nil {
		return nil, err
	}
	wait := c.cfg.Wait
	if opts.Wait != 0 {
		wait = opts.Wait
	}
	if wait > MaxWait {
		return nil, fmt.Errorf("idemgate client: Wait %s exceeds the server's maximum %s", wait, MaxWait)
	}
	cmd := &command{path: path, body: bytes.Clone(body), key: key, header: opts.Header, wait: max(wait, 0)}
	res, err := c.send(ctx, cmd)
	if err != nil {
		return nil, &IncompleteError{IdempotencyKey: key, Err: err}
	}
	if res.Pending() && !opts.NoAwait {
		if res, err = c.await(ctx, cmd, res); err != nil {
			return nil, err
		}
	}
	return res, problemError(res)
}

// send posts the command until a final answer (a 202 included).
func (c *Client) send(ctx context.Context, cmd *command) (*Result, error) {
	res, err := c.do(ctx, http.MethodPost, cmd.path, cmd.body, c.commandHeader(cmd), c.cfg.AttemptTimeout+cmd.wait)
	if err != nil {
		return nil, err
	}
	res.IdempotencyKey = cmd.key
	res.Completed = isRecorded(res)
	if res.Pending() {
		res.OperationID = pendingOperationID(res)
	}
	return res, nil
}

func (c *Client) commandHeader(cmd *command) http.Header {
	h := http.Header{}
	for k, vs := range cmd.header {
		h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	h.Set("Idempotency-Key", cmd.key)
	h.Set("Content-Type", "application/json")
	if secs := waitSeconds(cmd.wait); secs > 0 {
		h.Set("Prefer", "wait="+strconv.Itoa(secs))
	} else {
		h.Del("Prefer")
	}
	return h
}

// waitSeconds rounds a wait up to whole seconds, as Prefer: wait counts.
func waitSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

// problemError is the error of a final answer: a *Problem from status 400.
func problemError(r *Result) error {
	if r.StatusCode < 400 {
		return nil
	}
	return problemOf(r)
}

// get reads path, with retries; an answer of status 400 or more is a
// *Problem.
func (c *Client) get(ctx context.Context, path string) (*Result, error) {
	res, err := c.do(ctx, http.MethodGet, path, nil, http.Header{}, c.cfg.AttemptTimeout)
	if err != nil {
		return nil, err
	}
	return res, problemError(res)
}

// do sends one request until an answer that is not retryable, within the
// retry policy. Its error is the context's, or a *RetryError.
func (c *Client) do(ctx context.Context, method, path string, body []byte, h http.Header, attemptTimeout time.Duration) (*Result, error) {
	p := c.cfg.Retry
	backoff := p.backoff().New()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		res, err := c.attempt(ctx, method, path, body, h, attemptTimeout)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var delay time.Duration
		var last error
		switch {
		case err != nil:
			last = err
		case retryable(res):
			last = problemOf(res)
			delay, _ = retry.ParseAfter(res.Header.Get("Retry-After"), time.Now())
		default:
			return res, nil
		}
		elapsed := time.Since(start)
		delay = max(delay, backoff.NextBackOff())
		if attempt >= p.MaxAttempts || elapsed+delay > p.MaxElapsed {
			return nil, &RetryError{Attempts: attempt, Elapsed: elapsed, Last: last}
		}
		c.cfg.Logger.Debug("idemgate client: retrying", "method", method, "path", path,
			"attempt", attempt, "delay", delay, "err", last)
		if err := c.pause(ctx, delay); err != nil {
			return nil, err
		}
	}
}

// attempt sends the request once and reads the whole answer.
func (c *Client) attempt(ctx context.Context, method, path string, body []byte, h http.Header, timeout time.Duration) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json, application/problem+json")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	return &Result{
		StatusCode: resp.StatusCode,
		Header:     resp.Header,
		Body:       b,
		Replayed:   strings.EqualFold(resp.Header.Get("Idempotent-Replayed"), "true"),
	}, nil
}

// url places a path ("/v1/payments", or a Location such as
// "/v1/operations/…") below BaseURL. An absolute Location keeps only its
// path and query: the API key is only ever sent to BaseURL's host.
func (c *Client) url(ref string) string {
	if u, err := url.Parse(ref); err == nil && u.IsAbs() {
		ref = u.RequestURI()
	}
	if !strings.HasPrefix(ref, "/") {
		ref = "/" + ref
	}
	return c.base + ref
}

// checkKey applies the contract's syntax to a caller's key: 1 to 255
// visible ASCII characters (spaces allowed inside an sf-string).
func checkKey(key string) error {
	if len(key) == 0 || len(key) > 255 {
		return errors.New("idemgate client: an Idempotency-Key has 1 to 255 characters")
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return fmt.Errorf("idemgate client: Idempotency-Key %q has a character that is not visible ASCII", key)
		}
	}
	return nil
}
