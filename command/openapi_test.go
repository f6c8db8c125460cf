package command

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/idemgate/idemgate"
	"github.com/idemgate/idemgate/emit"
	"github.com/idemgate/idemgate/gateway"
	"github.com/idemgate/idemgate/payments"
	"github.com/idemgate/idemgate/store"
)

// The served document with a routes file: the payments module's routes
// and the gateway's, each route with its schema, a document whose every
// reference resolves and every schema compiles, with typed status fields,
// an absolute server and a typed response body that real operation views
// match.
func TestOpenAPIServedWithRoutes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("order.schema.json", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://example.com/order.json",
		"type": "object", "required": ["sku", "lines"], "additionalProperties": false,
		"properties": {"sku": {"type": "string", "minLength": 1}, "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}}},
		"$defs": {"line": {"type": "object", "required": ["qty"], "properties": {"qty": {"type": "integer", "minimum": 1}}}}}`)
	write("routes.yaml", `routes:
  - operation: orders.create
    path: /v1/orders
    upstream: http://127.0.0.1:9/orders
    schema: order.schema.json
  - operation: orders.cancel
    path: /v1/orders/{id}/cancel
    upstream: http://127.0.0.1:9/orders/{id}/cancel
`)
	gw, err := gateway.Load(filepath.Join(dir, "routes.yaml"), gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw := serveOpenAPI(t, payments.Module(payments.Config{}), gw)
	doc := decodeDocument(t, raw)
	checkDocument(t, doc)

	// The gateway's routes, the order's schema as the request body.
	post := dig(t, doc, "paths", "/v1/orders", "post").(map[string]any)
	if post["operationId"] != "gateway_orders_create" {
		t.Fatalf("operationId %v", post["operationId"])
	}
	ref := dig(t, post, "requestBody", "content", "application/json", "schema", "$ref")
	if ref != "#/components/schemas/GatewayOrdersCreateRequest" {
		t.Fatalf("request body %v", ref)
	}
	if _, ok := dig(t, doc, "paths", "/v1/orders/{id}/cancel", "post").(map[string]any); !ok {
		t.Fatal("no POST /v1/orders/{id}/cancel")
	}
	order := compileIn(t, raw, "#/components/schemas/GatewayOrdersCreateRequest")
	mustMatch(t, order, `{"sku": "a", "lines": [{"qty": 2}]}`, true)
	mustMatch(t, order, `{"sku": "a", "lines": [{"qty": 0}]}`, false) // through #/$defs/line, rebased
	mustMatch(t, order, `{"lines": []}`, false)

	// Bodies the modules record first, the core's Problem, then any JSON
	// value for the gateway's upstreams.
	if got, want := anyOfRefs(t, doc), []string{"Payment", "Refund", "Problem", "JSONValue"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("RecordedBody is the anyOf of %v, want %v", got, want)
	}
	if _, leaked := doc["x-idemgate-recorded-bodies"]; leaked {
		t.Fatal("the fragments' x-idemgate-recorded-bodies is served")
	}

	// Operation views as GET /v1/operations/{id} writes them.
	op := compileIn(t, raw, "#/components/schemas/Operation")
	const id = `"operation_id": "6f1c1f0e-8a43-4d3e-9d0a-6a1c8e1d2b7f"`
	for name, c := range map[string]struct {
		view string
		ok   bool
	}{
		"Pending":        {`{` + id + `, "status": "pending"}`, true},
		"Payment":        {`{` + id + `, "status": "completed", "response": {"status": 201, "body": {"id": "6f1c1f0e-8a43-4d3e-9d0a-6a1c8e1d2b7f", "operation_id": "6f1c1f0e-8a43-4d3e-9d0a-6a1c8e1d2b7f", "status": "succeeded", "amount": 1000, "currency": "EUR", "customer": "c", "description": null, "refunded_amount": 0, "created_at": "2025-01-02T03:04:05.123456Z"}}}`, true},
		"Problem":        {`{` + id + `, "status": "completed", "response": {"status": 402, "body": {"type": "https://idemgate.dev/problems/payment-declined", "title": "Payment declined", "status": 402, "detail": "d"}}}`, true},
		"UpstreamText":   {`{` + id + `, "status": "completed", "response": {"status": 200, "body": "plain text"}, "upstream": {"attempts": 2, "failures": 1, "unfinished": 0, "first_attempt_at": "2025-01-02T03:04:05.123456Z", "last_attempt_at": "2025-01-02T03:04:06.123456Z", "last_error": "timeout"}}`, true},
		"OutcomeUnknown": {`{` + id + `, "status": "outcome_unknown", "upstream": {"attempts": 10, "failures": 0, "unfinished": 10, "first_attempt_at": "2025-01-02T03:04:05.123456Z", "last_attempt_at": "2025-01-02T03:04:06.123456Z", "outcome_unknown_since": "2025-01-02T03:04:07.123456Z"}}`, true},
		"UnknownAnswer":  {`{` + id + `, "status": "outcome_unknown", "response": {"status": 201, "body": {}}}`, false},
		"UpstreamJSON":   {`{` + id + `, "status": "completed", "response": {"status": 201, "body": [1, {"a": null}]}}`, true},
		"UpstreamNull":   {`{` + id + `, "status": "completed", "response": {"status": 200, "body": null}}`, true},
		"StatusTypo":     {`{` + id + `, "status": "done"}`, false},
		"NoResponse":     {`{` + id + `, "status": "completed"}`, false},
		"EarlyAnswer":    {`{` + id + `, "status": "pending", "response": {"status": 201, "body": {}}}`, false},
		"NoBody":         {`{` + id + `, "status": "completed", "response": {"status": 201}}`, false},
	} {
		t.Run(name, func(t *testing.T) { mustMatch(t, op, c.view, c.ok) })
	}
}

// Without the gateway, every recorded body is one the modules declare or
// a Problem; a module with operations and no declaration (a library
// user's) could record anything.
func TestOpenAPIRecordedBodies(t *testing.T) {
	own := idemgate.Module{Name: "notes", Operations: []idemgate.Operation{{
		Name: "notes.create", Path: "/v1/notes",
		Validate: func(b []byte) (json.RawMessage, error) { return b, nil },
		Apply: idemgate.TxApplierFunc(func(context.Context, pgx.Tx, idemgate.Command) (idemgate.Response, error) {
			return idemgate.Response{Status: 201}, nil
		}),
	}}}
	for name, c := range map[string]struct {
		mods []idemgate.Module
		want []string
	}{
		"Payments":              {[]idemgate.Module{payments.Module(payments.Config{})}, []string{"Payment", "Refund", "Problem"}},
		"PaymentsAndUndeclared": {[]idemgate.Module{payments.Module(payments.Config{}), own}, []string{"Payment", "Refund", "Problem", "JSONValue"}},
	} {
		t.Run(name, func(t *testing.T) {
			reg, err := idemgate.NewRegistry(c.mods...)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := openAPIDocument(reg)
			if err != nil {
				t.Fatal(err)
			}
			doc := decodeDocument(t, raw)
			checkDocument(t, doc)
			if got := anyOfRefs(t, doc); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("RecordedBody is the anyOf of %v, want %v", got, c.want)
			}
		})
	}
	t.Run("ErrNotAList", func(t *testing.T) {
		bad := own
		bad.OpenAPI = []byte(`{"x-idemgate-recorded-bodies": {"$ref": "#/components/schemas/Problem"}}`)
		reg, err := idemgate.NewRegistry(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := openAPIDocument(reg); err == nil || !strings.Contains(err.Error(), `module "notes"`) {
			t.Fatalf("err = %v, want one naming the module", err)
		}
	})
}

// serveOpenAPI answers GET /openapi.json from an API serving mods.
func serveOpenAPI(t *testing.T, mods ...idemgate.Module) []byte {
	t.Helper()
	reg, err := idemgate.NewRegistry(mods...)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(nil, 0) // /openapi.json reads no database
	api, err := New(Config{Registry: reg, Store: st, Emitter: emit.New(context.Background(), nil, "unused", st, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return body
}

func decodeDocument(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	return doc
}

// checkDocument asserts what code generators need of the document: an
// absolute server URL, unique operationIds, references that resolve,
// every enum and const typed (else a generated field is untyped), and
// every schema a valid JSON Schema 2020-12.
func checkDocument(t *testing.T, doc map[string]any) {
	t.Helper()
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", doc["openapi"])
	}
	servers, _ := doc["servers"].([]any)
	if len(servers) == 0 {
		t.Fatal("no servers")
	}
	for _, s := range servers {
		u, err := url.Parse(dig(t, s, "url").(string))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("server %v is not an absolute http(s) URL", s)
		}
	}
	ids := map[string]string{}
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			id, _ := op.(map[string]any)["operationId"].(string)
			if id == "" || ids[id] != "" {
				t.Fatalf("%s %s: operationId %q missing or also %s's", method, path, id, ids[id])
			}
			ids[id] = method + " " + path
		}
	}
	var schemas []string
	walk(doc, "", func(ptr string, m map[string]any) {
		if ref, ok := m["$ref"].(string); ok {
			if !strings.HasPrefix(ref, "#/") {
				t.Errorf("%s: $ref %s is not within the document", ptr, ref)
			} else if _, ok := resolve(doc, ref); !ok {
				t.Errorf("%s: $ref %s does not resolve", ptr, ref)
			}
		}
		_, hasEnum := m["enum"]
		_, hasConst := m["const"]
		if (hasEnum || hasConst) && m["type"] == nil {
			t.Errorf("%s: an enum or const without a type", ptr)
		}
		if s, ok := m["schema"].(map[string]any); ok && s != nil {
			schemas = append(schemas, ptr+"/schema")
		}
	})
	for name := range dig(t, doc, "components", "schemas").(map[string]any) {
		schemas = append(schemas, "/components/schemas/"+escape(name))
	}
	raw, _ := json.Marshal(doc)
	sort.Strings(schemas)
	for _, ptr := range schemas {
		compileIn(t, raw, "#"+ptr)
	}
}

// compileIn compiles the schema at the fragment ptr of the document.
func compileIn(t *testing.T, doc []byte, ptr string) *jsonschema.Schema {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	const base = "https://idemgate.test/openapi.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(base, v); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(base + ptr)
	if err != nil {
		t.Fatalf("%s is not a valid JSON Schema: %v", ptr, err)
	}
	return s
}

func mustMatch(t *testing.T, s *jsonschema.Schema, instance string, want bool) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(instance))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(v); (err == nil) != want {
		t.Fatalf("%s: valid %v, want %v (%v)", instance, err == nil, want, err)
	}
}

// anyOfRefs names the schemas RecordedBody is the anyOf of.
func anyOfRefs(t *testing.T, doc map[string]any) []string {
	t.Helper()
	var out []string
	for _, s := range dig(t, doc, "components", "schemas", "RecordedBody", "anyOf").([]any) {
		out = append(out, strings.TrimPrefix(dig(t, s, "$ref").(string), "#/components/schemas/"))
	}
	return out
}

// walk calls fn on every object of v with its JSON pointer.
func walk(v any, ptr string, fn func(string, map[string]any)) {
	switch t := v.(type) {
	case map[string]any:
		fn(ptr, t)
		for k, e := range t {
			walk(e, ptr+"/"+escape(k), fn)
		}
	case []any:
		for i, e := range t {
			walk(e, ptr+"/"+strconv.Itoa(i), fn)
		}
	}
}

func resolve(doc any, ref string) (any, bool) {
	v := doc
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)]; !ok {
			return nil, false
		}
	}
	return v, true
}

func dig(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok || m[k] == nil {
			t.Fatalf("no %q in the document (path %v)", k, keys)
		}
		v = m[k]
	}
	return v
}

// escape is a JSON pointer token, percent-encoded for a URI fragment.
func escape(k string) string {
	return url.PathEscape(strings.NewReplacer("~", "~0", "/", "~1").Replace(k))
}
