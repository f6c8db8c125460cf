package console

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/consumer"
	"github.com/idemgate/idemgate/store"
)

// view is what every page's template gets.
type view struct {
	Title    string
	Operator *session
	CSRF     string
	Data     any
}

type errorPage struct{ Title, Message string }

var funcs = template.FuncMap{
	"ts": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05.000Z")
		case *time.Time:
			if v == nil {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05.000Z")
		}
		return "—"
	},
	"hexs": func(b []byte) string { return hex.EncodeToString(b) },
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// render writes a page; a template that fails is a 500 with nothing of
// the half-written page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, data any) {
	v := view{Operator: s, Data: data}
	if s != nil {
		v.CSRF = s.csrf
	}
	if t, ok := data.(interface{ title() string }); ok {
		v.Title = t.title()
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, v); err != nil {
		c.cfg.Logger.Error("console page", "page", name, "err", err)
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (p errorPage) title() string { return p.Title }
func (loginPage) title() string   { return "Log in" }

// ---- overview

type overviewPage struct {
	Chart        chart
	Backlog      store.Backlog
	BacklogErr   string
	OldestAge    string
	Dependencies []depState
	Lag          []consumer.PartitionLag
	LagErr       string
	LagShown     bool
	Scope        string
}

func (overviewPage) title() string { return "Overview" }

type depState struct {
	Name     string
	OK       bool
	Required bool
	Error    string
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	p := overviewPage{Scope: s.scope.String()}
	now := c.cfg.Now()
	acc, comp, err := c.cfg.Store.Throughput(ctx, tenants(s.scope), time.Hour)
	p.Chart = newChart(now, acc, comp, err)
	if p.Backlog, err = c.cfg.Store.Backlog(ctx, tenants(s.scope)); err != nil {
		p.BacklogErr = err.Error()
	} else if !p.Backlog.OldestPending.IsZero() {
		p.OldestAge = age(now.Sub(p.Backlog.OldestPending))
	}
	for _, d := range c.cfg.Dependencies {
		st := depState{Name: d.Name, Required: d.Required, OK: true}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := d.Check.Ping(pctx); err != nil {
			st.OK, st.Error = false, err.Error()
		}
		cancel()
		p.Dependencies = append(p.Dependencies, st)
	}
	if c.cfg.Lag != nil {
		p.LagShown = true
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if p.Lag, err = c.cfg.Lag(lctx); err != nil {
			p.LagErr = err.Error()
		}
		cancel()
	}
	c.render(w, r, http.StatusOK, "overview", s, p)
}

// age writes a duration the way an operator reads it.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// ---- operations

// listStates are the state filter's values, with their labels.
var listStates = []struct{ Value, Label string }{
	{"", "any state"},
	{"pending", "pending (not completed)"},
	{"accepted", "accepted (not yet in Kafka)"},
	{"published", "published (in Kafka)"},
	{"calling", "calling the upstream"},
	{"outcome_unknown", "outcome unknown"},
	{"dead_lettered", "failed (dead-lettered)"},
	{"completed", "completed"},
}

var ages = []string{"", "1m", "5m", "15m", "1h", "6h", "24h"}

const pageSize = 50

type operationsPage struct {
	State, Operation, Tenant, Age string
	States                        []struct{ Value, Label string }
	Operations, Tenants, Ages     []string
	Rows                          []row
	Next                          string // the next page's URL, "" on the last
	Error                         string
}

func (operationsPage) title() string { return "Operations" }

type row struct {
	store.KeyView
	Status string // the state as shown
	Age    string
}

// stateFilter turns the state filter's value into the store's filter.
func stateFilter(state string) (store.KeyFilter, bool) {
	switch state {
	case "":
		return store.KeyFilter{AnyState: true}, true
	case "dead_lettered", "failed":
		return store.KeyFilter{DeadLettered: true}, true
	case "calling":
		return store.KeyFilter{Calling: true}, true
	}
	s := idemgate.ClaimState(state)
	switch s {
	case idemgate.ClaimPending, idemgate.ClaimAccepted, idemgate.ClaimPublished, idemgate.ClaimOutcomeUnknown, idemgate.ClaimCompleted:
		return store.KeyFilter{State: s}, true
	}
	return store.KeyFilter{}, false
}

// encodeCursor and decodeCursor write a keyset cursor in a URL.
func encodeCursor(k store.KeyCursor) string {
	return k.AcceptedAt.UTC().Format(time.RFC3339Nano) + "_" + k.OperationID
}

func decodeCursor(s string) (*store.KeyCursor, error) {
	at, id, ok := strings.Cut(s, "_")
	t, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil || uuid.Validate(id) != nil {
		return nil, errors.New("not a cursor")
	}
	return &store.KeyCursor{AcceptedAt: t, OperationID: id}, nil
}

func (c *Console) operationNames() []string {
	var out []string
	for _, op := range c.cfg.Registry.Operations() {
		out = append(out, op.Name)
	}
	slices.Sort(out)
	return out
}

func (c *Console) operations(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	p := operationsPage{State: q.Get("state"), Operation: q.Get("operation"), Tenant: strings.TrimSpace(q.Get("tenant")), Age: q.Get("age"),
		States: listStates, Operations: c.operationNames(), Tenants: s.scope.Tenants, Ages: ages}
	f, ok := stateFilter(p.State)
	if !ok {
		c.render(w, r, http.StatusBadRequest, "error", s, errorPage{Title: "Bad filter", Message: "No such state: " + p.State})
		return
	}
	f.Limit, f.NewestFirst, f.Operation, f.Tenants = pageSize, true, p.Operation, tenants(s.scope)
	if p.Tenant != "" {
		if !s.scope.Allows(p.Tenant) {
			c.render(w, r, http.StatusForbidden, "error", s, errorPage{Title: "Forbidden", Message: "The tenant " + p.Tenant + " is not in your operator key's scope."})
			return
		}
		f.Tenants = []string{p.Tenant}
	}
	if p.Age != "" {
		d, err := time.ParseDuration(p.Age)
		if err != nil || d < 0 {
			c.render(w, r, http.StatusBadRequest, "error", s, errorPage{Title: "Bad filter", Message: "The age is a duration such as 5m or 1h."})
			return
		}
		f.OlderThan = d
	}
	if a := q.Get("after"); a != "" {
		cur, err := decodeCursor(a)
		if err != nil {
			c.render(w, r, http.StatusBadRequest, "error", s, errorPage{Title: "Bad page", Message: "This page's cursor is not valid."})
			return
		}
		f.After = cur
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	keys, err := c.cfg.Store.Keys(ctx, f)
	if err != nil {
		p.Error = err.Error()
	}
	now := c.cfg.Now()
	for _, k := range keys {
		p.Rows = append(p.Rows, row{KeyView: k, Status: shownState(k), Age: age(now.Sub(k.AcceptedAt))})
	}
	if len(keys) == pageSize {
		nq := url.Values{}
		for _, k := range []string{"state", "operation", "tenant", "age"} {
			if v := q.Get(k); v != "" {
				nq.Set(k, v)
			}
		}
		nq.Set("after", encodeCursor(keys[len(keys)-1].Cursor()))
		p.Next = Prefix + "operations?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "operations", s, p)
}

// shownState is a claim's state as the console writes it.
func shownState(k store.KeyView) string {
	switch {
	case k.DeadLettered:
		return fmt.Sprintf("failed (dead-lettered, %d)", k.Response.Status)
	case k.State == idemgate.ClaimCompleted:
		return fmt.Sprintf("completed (%d)", k.Response.Status)
	case k.State != idemgate.ClaimOutcomeUnknown && k.Calls != nil:
		return "calling the upstream"
	}
	return strings.ReplaceAll(string(k.State), "_", " ")
}

// ---- one operation

type operationPage struct {
	Op        store.OperationView
	Status    string
	Timeline  []event
	Request   string
	Answer    string
	Redrive   bool // dead-lettered or outcome unknown: may be driven again
	Confirm   bool // the confirmation step
	Redriven  bool // just driven again
	NotStored string
}

func (p operationPage) title() string { return "Operation " + p.Op.OperationID }

// event is one line of an operation's timeline.
type event struct {
	At     *time.Time
	What   string
	Detail string
	Bad    bool
}

func (c *Console) loadOperation(w http.ResponseWriter, r *http.Request, s *session) (store.OperationView, bool) {
	id := r.PathValue("id")
	notFound := func() {
		c.render(w, r, http.StatusNotFound, "error", s, errorPage{Title: "Not found",
			Message: "No operation " + id + " in your scope (never claimed, forgotten after its retention, or another tenant's)."})
	}
	if uuid.Validate(id) != nil {
		notFound()
		return store.OperationView{}, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	v, found, err := c.cfg.Store.Operation(ctx, c.cfg.Projector, strings.ToLower(id))
	if err != nil {
		c.render(w, r, http.StatusServiceUnavailable, "error", s, errorPage{Title: "Database unavailable", Message: err.Error()})
		return v, false
	}
	if !found || !s.scope.Allows(v.Tenant) {
		notFound()
		return v, false
	}
	return v, true
}

func (c *Console) operation(w http.ResponseWriter, r *http.Request, s *session) {
	v, ok := c.loadOperation(w, r, s)
	if !ok {
		return
	}
	p := newOperationPage(v)
	p.Redriven = r.URL.Query().Get("redriven") == "1"
	c.render(w, r, http.StatusOK, "operation", s, p)
}

func newOperationPage(v store.OperationView) operationPage {
	p := operationPage{Op: v, Status: shownState(v.KeyView), Timeline: timeline(v), Request: pretty(v.Request),
		Redrive: v.DeadLettered || v.State == idemgate.ClaimOutcomeUnknown}
	if v.Response != nil {
		p.Answer = pretty(v.Response.Body)
	}
	return p
}

// pretty indents a JSON body; anything else is shown as it is (as text:
// the template escapes it).
func pretty(b []byte) string {
	var inner string
	if json.Unmarshal(b, &inner) == nil && json.Valid([]byte(inner)) {
		b = []byte(inner) // a body the event carries as a JSON string
	}
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") == nil {
		return out.String()
	}
	return string(b)
}

// timeline is what the tables record of a command's life, in its order.
func timeline(v store.OperationView) []event {
	at := func(t time.Time) *time.Time { return &t }
	ev := []event{{At: at(v.AcceptedAt), What: "accepted", Detail: "claimed by the API" + region(v.AcceptedRegion)}}
	if v.LeaseUntil != nil {
		ev = append(ev, event{What: "emitted, not yet acknowledged by Kafka", Detail: "the sweeper emits it again from " + v.LeaseUntil.UTC().Format(time.RFC3339)})
	} else {
		ev = append(ev, event{What: "emitted", Detail: "acknowledged by Kafka (the time is not recorded)" + region(v.EmittedRegion)})
	}
	if len(v.History) > 0 {
		ev = append(ev, historyEvents(v.History)...)
	} else {
		ev = append(ev, summaryEvents(v)...)
	}
	if v.AppliedAt != nil {
		ev = append(ev, event{At: v.AppliedAt, What: "applied", Detail: "the projector's dedup record"})
	}
	if v.Response != nil {
		ev = append(ev, event{At: v.CompletedAt, What: fmt.Sprintf("answer stored: %d", v.Response.Status), Bad: v.DeadLettered,
			Detail: map[bool]string{true: "dead-lettered: idemgate gave up on it", false: "replayed to every retry"}[v.DeadLettered]})
		if v.PublishedAt != nil {
			ev = append(ev, event{At: v.PublishedAt, What: "result published", Detail: "on the results topic"})
		} else {
			ev = append(ev, event{What: "result not yet published", Detail: "the relay publishes it"})
		}
	}
	return ev
}

// historyEvents are the timeline lines of a command's history: each
// re-emission, each upstream attempt and how it ended, a quarantine, a
// redrive, with their times.
func historyEvents(h []store.HistoryEntry) []event {
	var ev []event
	for _, e := range h {
		at := e.At
		switch e.Kind {
		case store.HistoryReemitted:
			ev = append(ev, event{At: &at, What: "re-emitted", Detail: "by the sweeper, its lease having passed" + region(e.Region)})
		case store.HistoryAttempt:
			ev = append(ev, event{At: &at, What: fmt.Sprintf("upstream attempt %d", e.Attempt),
				Detail: "called under the operation id as Idempotency-Key" + region(e.Region)})
		case store.HistoryAttemptFailed:
			ev = append(ev, event{At: &at, What: fmt.Sprintf("upstream attempt %d failed", e.Attempt), Detail: e.Detail, Bad: true})
		case store.HistoryAttemptEnded:
			ev = append(ev, event{At: &at, What: fmt.Sprintf("upstream attempt %d not sent", e.Attempt), Detail: e.Detail, Bad: true})
		case store.HistoryAttemptUnfinished:
			ev = append(ev, event{At: &at, What: fmt.Sprintf("upstream attempt %d unfinished", e.Attempt), Detail: e.Detail, Bad: true})
		case store.HistoryQuarantined:
			ev = append(ev, event{At: &at, What: "quarantined: outcome unknown", Bad: true,
				Detail: "an attempt ended without an outcome: the upstream may have applied it; nothing is stored until it is driven again"})
		case store.HistoryRedriven:
			ev = append(ev, event{At: &at, What: "driven again", Detail: "by an operator; it was " + e.Detail})
		default:
			ev = append(ev, event{At: &at, What: string(e.Kind), Detail: e.Detail})
		}
	}
	return ev
}

// summaryEvents are the timeline lines of a command with no history
// (accepted before migration 0015): what the recovery point counts.
func summaryEvents(v store.OperationView) []event {
	at := func(t time.Time) *time.Time { return &t }
	var ev []event
	if v.Reemissions > 0 {
		ev = append(ev, event{What: fmt.Sprintf("re-emitted %d time(s)", v.Reemissions), Detail: "by the sweeper, its lease having passed (the times are not recorded)"})
	}
	if a := v.Calls; a != nil {
		if a.Attempts > 1 {
			ev = append(ev, event{At: at(a.FirstAttemptAt), What: "upstream attempt 1", Detail: "the first call, under the operation id as Idempotency-Key"})
		}
		if v.FirstFailureAt != nil {
			ev = append(ev, event{At: v.FirstFailureAt, What: "first observed failure", Bad: true})
		}
		last := fmt.Sprintf("%d attempt(s): %d failed, %d unfinished (their process died)", a.Attempts, a.Failures, a.Unfinished)
		if v.InFlight && v.Response == nil {
			last += "; one in flight"
		}
		if a.LastError != "" {
			last += "; last error: " + a.LastError
		}
		what := fmt.Sprintf("upstream attempt %d (the last)", a.Attempts)
		if a.Attempts == 1 {
			what = "upstream attempt 1"
		}
		ev = append(ev, event{At: at(a.LastAttemptAt), What: what, Detail: last, Bad: a.LastError != ""})
		if a.OutcomeUnknownAt != nil {
			ev = append(ev, event{At: a.OutcomeUnknownAt, What: "quarantined: outcome unknown", Bad: true,
				Detail: "an attempt ended without an outcome: the upstream may have applied it; nothing is stored until it is driven again"})
		}
	}
	return ev
}

func region(r string) string {
	if r == "" {
		return ""
	}
	return " in region " + r
}

// ---- drive again

func (c *Console) confirmRedrive(w http.ResponseWriter, r *http.Request, s *session) {
	v, ok := c.loadOperation(w, r, s)
	if !ok {
		return
	}
	p := newOperationPage(v)
	p.Confirm = true
	if !p.Redrive {
		p.NotStored = "This command is neither dead-lettered nor of unknown outcome: there is nothing to drive again."
	}
	c.render(w, r, http.StatusOK, "operation", s, p)
}

func (c *Console) redrive(w http.ResponseWriter, r *http.Request, s *session) {
	v, ok := c.loadOperation(w, r, s)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	err := c.cfg.Store.Redrive(ctx, c.cfg.Projector, v.OperationID)
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	c.audit(r.Context(), s, "redrive", "operation_id", v.OperationID, "tenant", v.Tenant, "operation", v.Operation, "key", v.Key, "result", result)
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, store.ErrNotDeadLettered) {
			status = http.StatusConflict
		}
		c.render(w, r, status, "error", s, errorPage{Title: "Not driven again", Message: err.Error()})
		return
	}
	http.Redirect(w, r, Prefix+"operations/"+v.OperationID+"?redriven=1", http.StatusSeeOther)
}

// ---- key lookup

type lookupPage struct {
	Tenant, Operation, Key string
	Operations, Tenants    []string
	Message                string
}

func (lookupPage) title() string { return "Key lookup" }

func (c *Console) lookup(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	p := lookupPage{Tenant: strings.TrimSpace(q.Get("tenant")), Operation: q.Get("operation"), Key: q.Get("key"),
		Operations: c.operationNames(), Tenants: s.scope.Tenants}
	if len(p.Tenants) == 1 && p.Tenant == "" {
		p.Tenant = p.Tenants[0]
	}
	if q.Get("key") == "" {
		c.render(w, r, http.StatusOK, "lookup", s, p)
		return
	}
	if !s.scope.Allows(p.Tenant) {
		p.Message = "The tenant " + p.Tenant + " is not in your operator key's scope."
		c.render(w, r, http.StatusForbidden, "lookup", s, p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	v, found, err := c.cfg.Store.Key(ctx, p.Tenant, p.Operation, p.Key)
	switch {
	case err != nil:
		p.Message = err.Error()
		c.render(w, r, http.StatusServiceUnavailable, "lookup", s, p)
	case !found:
		p.Message = "No claim of this key: never claimed, or forgotten after its retention."
		c.render(w, r, http.StatusNotFound, "lookup", s, p)
	default:
		http.Redirect(w, r, Prefix+"operations/"+v.OperationID, http.StatusSeeOther)
	}
}
