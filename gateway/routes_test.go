package gateway

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idemgate/idemgate"
)

// writeRoutes writes a routes file (and files beside it) in a folder of
// t's own and returns its path.
func writeRoutes(t *testing.T, yaml string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const orderSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["sku","qty"],
"properties":{"sku":{"type":"string"},"qty":{"type":"integer","minimum":1},"items":{"type":"array","items":{"type":"object","properties":{"n":{"type":"integer","minimum":1}}}}},
"additionalProperties":false}`

func TestLoad(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		path := writeRoutes(t, `
routes:
  - operation: orders.create            # a comment
    path: /v1/orders
    upstream: http://127.0.0.1:9000/orders
    schema: order.schema.json
    timeout: 2s
    retention: 48h
  - operation: orders.cancel
    path: /v1/orders/{id}/cancel
    upstream: https://orders.internal/orders/{id}/cancel
`, map[string]string{"order.schema.json": orderSchema})
		mod, err := Load(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(mod.Operations) != 2 || mod.Operations[0].Name != "orders.create" || mod.Operations[1].Path != "/v1/orders/{id}/cancel" {
			t.Fatalf("operations %+v", mod.Operations)
		}
		create := mod.Operations[0]
		if create.Retention.Hours() != 48 || create.Call == nil || create.Apply != nil {
			t.Fatalf("orders.create: retention %v, call %v", create.Retention, create.Call)
		}
		if up := create.Call.(*upstream); up.timeout.Seconds() != 2 {
			t.Fatalf("timeout %v", up.timeout)
		}
		if up := mod.Operations[1].Call.(*upstream); up.timeout != DefaultTimeout {
			t.Fatalf("default timeout %v", up.timeout)
		}
		if !strings.Contains(mod.Origin, path) {
			t.Fatalf("origin %q does not name the file", mod.Origin)
		}
		// The routes join a registry beside other modules, and their
		// schemas reach the OpenAPI fragment.
		if _, err := idemgate.NewRegistry(mod); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Paths map[string]map[string]struct {
				RequestBody struct {
					Content map[string]struct{ Schema map[string]any }
				} `json:"requestBody"`
			}
			Components struct{ Schemas map[string]map[string]any }
		}
		if err := json.Unmarshal(mod.OpenAPI, &doc); err != nil {
			t.Fatal(err)
		}
		ref := doc.Paths["/v1/orders"]["post"].RequestBody.Content["application/json"].Schema["$ref"]
		if s := doc.Components.Schemas["GatewayOrdersCreateRequest"]; ref != "#/components/schemas/GatewayOrdersCreateRequest" || s["required"] == nil {
			t.Fatalf("the schema is not in the OpenAPI fragment: body %v, component %v", ref, s)
		}
	})

	// Each refusal names the file, the route and the reason, in one line.
	for name, tc := range map[string]struct {
		yaml  string
		files map[string]string
		want  string
	}{
		"ErrUnknownField":     {"routes:\n  - operation: a\n    path: /v1/a\n    upstrem: http://x/a\n", nil, `route 1 (line 4): unknown field "upstrem"`},
		"ErrUnknownTopField":  {"route:\n  - operation: a\n", nil, `unknown field "route"`},
		"ErrNotYAML":          {"routes: [\n", nil, "not YAML"},
		"ErrEmpty":            {"", nil, "empty"},
		"ErrNoRoutes":         {"routes: []\n", nil, "non-empty list"},
		"ErrMissingOperation": {"routes:\n  - path: /v1/a\n    upstream: http://x/a\n", nil, `module "gateway" (routes file %s): an operation has no name`},
		"ErrMissingUpstream":  {"routes:\n  - operation: a\n    path: /v1/a\n", nil, "route 1 (a): upstream is missing"},
		"ErrDuplicateOp":      {"routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a'}\n  - {operation: a, path: /v1/b, upstream: 'http://x/b'}\n", nil, `operation "a" (routes file %s) is registered twice`},
		"ErrDuplicatePath":    {"routes:\n  - {operation: a, path: '/v1/a/{x}', upstream: 'http://x/a'}\n  - {operation: b, path: '/v1/a/{y}', upstream: 'http://x/b'}\n", nil, `operation "b" (routes file %s): POST /v1/a/{y} collides with operation "a" (routes file %s)`},
		"ErrRelativeURL":      {"routes:\n  - {operation: a, path: /v1/a, upstream: /a}\n", nil, `upstream "/a" is not an absolute http:// or https:// URL`},
		"ErrFTPURL":           {"routes:\n  - {operation: a, path: /v1/a, upstream: 'ftp://x/a'}\n", nil, "is not an absolute http"},
		"ErrUnknownParameter": {"routes:\n  - {operation: a, path: '/v1/a/{id}', upstream: 'http://x/a/{oid}'}\n", nil, "uses {oid}, which path /v1/a/{id} does not have"},
		"ErrUnreadableSchema": {"routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a', schema: missing.json}\n", nil, "schema missing.json: open"},
		"ErrSchemaNotJSON":    {"routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a', schema: s.json}\n", map[string]string{"s.json": "{"}, "schema s.json is not JSON"},
		"ErrInvalidSchema":    {"routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a', schema: s.json}\n", map[string]string{"s.json": `{"type":"objekt"}`}, "schema s.json is not a valid JSON Schema"},
		"ErrBadTimeout":       {"routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a', timeout: soon}\n", nil, `timeout "soon" is not a positive duration`},
		"ErrNegativeTimeout":  {"routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a', timeout: -1s}\n", nil, `timeout "-1s" is not a positive duration`},
		"ErrTimeoutTooLong":   {"routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a', timeout: 5m}\n", nil, "timeout 5m0s is longer than 30s"},
		"ErrBadRetention":     {"routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a', retention: 1d}\n", nil, `retention "1d" is not a positive duration`},
		"ErrNestedValue":      {"routes:\n  - operation: a\n    path: /v1/a\n    upstream: {url: 'http://x'}\n", nil, "upstream must be a single value"},
		"ErrSlashInOperation": {"routes:\n  - {operation: a/b, path: /v1/a, upstream: 'http://x/a'}\n", nil, "may not contain '/'"},
		"ErrRouteNotAMapping": {"routes:\n  - just-a-string\n", nil, "route 1 (line 2): must be a mapping"},
	} {
		t.Run(name, func(t *testing.T) {
			path := writeRoutes(t, tc.yaml, tc.files)
			_, err := Load(path, Options{})
			if strings.Contains(tc.want, "%s") { // the registry's refusals name the file in the operation's origin
				tc.want = strings.ReplaceAll(tc.want, "%s", path)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want one naming %s and containing %q", err, path, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
	t.Run("ErrUnreadableFile", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), Options{})
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
			t.Fatalf("err = %v", err)
		}
	})
	// A path taken by a built-in route is refused by the registry, which
	// Load consults; its error names the routes file too.
	for name, path := range map[string]string{"ErrBuiltinRoute": "/v1/operations/{id}", "ErrHealthz": "/healthz"} {
		t.Run(name, func(t *testing.T) {
			file := writeRoutes(t, "routes:\n  - {operation: a, path: '"+path+"', upstream: 'http://x/a'}\n", nil)
			_, err := Load(file, Options{})
			if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "collides with a built-in route") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestSchemaValidation(t *testing.T) {
	path := writeRoutes(t, "routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a', schema: s.json}\n", map[string]string{"s.json": orderSchema})
	mod, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	validate := mod.Operations[0].Validate
	t.Run("OKKeepsTheBytes", func(t *testing.T) {
		body := "{ \"sku\": \"a<b>\",\n \"qty\": 2.0 }"
		got, err := validate([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != body {
			t.Fatalf("request %s carries %q, want the body as sent", got, back)
		}
	})
	for name, tc := range map[string]struct{ body, want string }{
		"ErrMissing":       {`{"sku":"a"}`, `at /: `},
		"ErrMinimum":       {`{"sku":"a","qty":0}`, `at /qty: `},
		"ErrNested":        {`{"sku":"a","qty":1,"items":[{"n":1},{"n":0}]}`, `at /items/1/n: `},
		"ErrWrongType":     {`{"sku":5,"qty":1}`, `at /sku: `},
		"ErrUnknownMember": {`{"sku":"a","qty":1,"x":1}`, `at /: `},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := validate([]byte(tc.body))
			var p *idemgate.Problem
			if !errors.As(err, &p) || p.Status != 422 || !strings.HasPrefix(p.Detail, tc.want) {
				t.Fatalf("err = %v, want a 422 whose detail starts %q", err, tc.want)
			}
		})
	}
	t.Run("OKNoSchemaAcceptsAnyJSON", func(t *testing.T) {
		mod, err := Load(writeRoutes(t, "routes:\n  - {operation: a, path: /v1/a, upstream: 'http://x/a'}\n", nil), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mod.Operations[0].Validate([]byte(`[1,"two"]`)); err != nil {
			t.Fatal(err)
		}
	})
}
