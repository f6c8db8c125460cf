package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/internal/retry"
	"github.com/idemgate/idemgate/tracing"
)

// caller is what every route's upstream shares: the HTTP client and the
// metrics.
type caller struct {
	client   *http.Client
	attempts *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newCaller(opts Options) (*caller, error) {
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:               nil, // upstreams are called directly, never through the environment's proxy
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	c := *client
	// A redirect is the upstream's answer, recorded as such: following
	// it would turn the POST into a GET elsewhere.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	k := &caller{
		client: &c,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idemgate_upstream_attempts_total",
			Help: "Calls to gateway upstreams, by operation and outcome class (2xx, 3xx, 4xx, 5xx, timeout, connection).",
		}, []string{"operation", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idemgate_upstream_latency_seconds",
			Help:    "Duration of calls to gateway upstreams, answered or not.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"operation"}),
	}
	if opts.Registerer != nil {
		for _, col := range []prometheus.Collector{k.attempts, k.latency} {
			if err := opts.Registerer.Register(col); err != nil {
				return nil, fmt.Errorf("gateway metrics: %w", err)
			}
		}
	}
	return k, nil
}

// upstream applies one route's commands by calling its service.
type upstream struct {
	*caller
	operation string
	url       string   // with {name} placeholders
	params    []string // the path's parameter names, in order
	timeout   time.Duration
}

var _ idemgate.CallApplier = (*upstream)(nil)

// Call POSTs the body the client sent to the upstream, with the operation
// id as Idempotency-Key on every attempt. 2xx and 4xx answers other than
// 408, 425 and 429 are final and returned to be recorded; 5xx, those
// three, timeouts and connection failures are retryable.
func (u *upstream) Call(ctx context.Context, cmd idemgate.Command, attempt int) (idemgate.Response, error) {
	var body string
	if err := json.Unmarshal(cmd.Request, &body); err != nil {
		return idemgate.Response{}, fmt.Errorf("%w: the command's request is not a gateway body", idemgate.ErrPermanent)
	}
	target, err := u.target(cmd.Target)
	if err != nil {
		return idemgate.Response{}, fmt.Errorf("%w: %v", idemgate.ErrPermanent, err)
	}
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return idemgate.Response{}, fmt.Errorf("%w: %v", idemgate.ErrPermanent, err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Idempotency-Key", cmd.OperationID)
	h.Set("Idemgate-Tenant", cmd.Tenant)
	h.Set("Idemgate-Operation", cmd.Operation)
	h.Set("Idemgate-Attempt", strconv.Itoa(attempt))
	// The trace context of the call (the projector's span, or the
	// client's traceparent passed along when tracing is off).
	tracing.Propagator().Inject(ctx, propagation.HeaderCarrier(h))
	start := time.Now()
	resp, data, err := u.do(req)
	u.latency.WithLabelValues(u.operation).Observe(time.Since(start).Seconds())
	if err != nil {
		class := "connection"
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			class = "timeout"
		}
		u.attempts.WithLabelValues(u.operation, class).Inc()
		return idemgate.Response{}, &idemgate.RetryableError{Err: fmt.Errorf("upstream %s: %s: %w", u.operation, class, err)}
	}
	u.attempts.WithLabelValues(u.operation, strconv.Itoa(resp.StatusCode/100)+"xx").Inc()
	if retryable(resp.StatusCode) {
		return idemgate.Response{}, &idemgate.RetryableError{
			Err:   fmt.Errorf("upstream %s answered %d", u.operation, resp.StatusCode),
			After: after(resp.Header),
		}
	}
	if len(data) > MaxResponseBytes {
		return answerNotKept(resp), nil
	}
	return idemgate.Response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
		Location: resp.Header.Get("Location"), Body: data}, nil
}

// answerNotKept is the response recorded for a final answer whose body is
// too large to store. The answer is final and, for a 2xx, the effect is
// applied: it is not a failure, not dead-lettered and not redriven. The
// recorded response keeps the upstream's status and Location and says, as
// a problem of type .../upstream-answer-not-kept, that the body was not
// kept.
func answerNotKept(resp *http.Response) idemgate.Response {
	what := fmt.Sprintf("the upstream answered %d, a final answer", resp.StatusCode)
	if resp.StatusCode < 400 {
		what = fmt.Sprintf("the upstream applied the command and answered %d", resp.StatusCode)
	}
	p := idemgate.NewProblem(resp.StatusCode, idemgate.ProblemUpstreamAnswerNotKept, "Upstream answer not kept",
		fmt.Sprintf("%s, but its body was larger than %d bytes and could not be kept; ask the upstream for the result", what, MaxResponseBytes))
	r := idemgate.ProblemResponse(p)
	r.Location = resp.Header.Get("Location")
	return r
}

// do sends req and reads at most one byte more than MaxResponseBytes of
// the answer. A body cut short by the connection is an error: the answer
// was not received.
func (u *upstream) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp, data, nil
}

// target fills the upstream URL's {name} placeholders from the command's
// target (see idemgate.Operation.TargetOf), each value path-escaped.
func (u *upstream) target(t string) (string, error) {
	values := map[string]string{}
	switch len(u.params) {
	case 0:
	case 1:
		values[u.params[0]] = t
	default:
		q, err := url.ParseQuery(t)
		if err != nil {
			return "", fmt.Errorf("target %q: %v", t, err)
		}
		for _, p := range u.params {
			values[p] = q.Get(p)
		}
	}
	return placeholder.ReplaceAllStringFunc(u.url, func(m string) string {
		return url.PathEscape(values[m[1:len(m)-1]])
	}), nil
}

// after is the wait an answer's Retry-After asks for, 0 when it asks for
// none (the projector caps it).
func after(h http.Header) time.Duration {
	d, _ := retry.ParseAfter(h.Get("Retry-After"), time.Now())
	return d
}

// retryable says whether an answer asks to be tried again later.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooEarly || status == http.StatusTooManyRequests
}
