package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fragment is what the tests read of an OpenAPI fragment.
type fragment struct {
	Paths map[string]map[string]struct {
		OperationID string `json:"operationId"`
		RequestBody struct {
			Content map[string]struct{ Schema map[string]any }
		} `json:"requestBody"`
	}
	Components     struct{ Schemas map[string]map[string]any }
	RecordedBodies []map[string]any `json:"x-idemgate-recorded-bodies"`
}

func buildFragment(t *testing.T, routes ...routeDoc) fragment {
	t.Helper()
	raw, err := openAPIFragment(routes)
	if err != nil {
		t.Fatal(err)
	}
	var f fragment
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func schemaDoc(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Each route's schema becomes a named component the request body refers
// to; its references within itself follow it there, its $id goes (the
// document is its base) and a dialect other than OpenAPI 3.1's stays.
func TestOpenAPIFragmentSchemas(t *testing.T) {
	f := buildFragment(t,
		routeDoc{operation: "orders.create", path: "/v1/orders", file: "order.json", schema: schemaDoc(t, `{
			"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://example.com/order.json",
			"title": "An order", "description": "What the shop sells.", "type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}}, "self": {"$ref": "#"}},
			"$defs": {"item": {"type": "object", "const": {"$ref": "data, not a reference"}}}}`)},
		routeDoc{operation: "orders-create", path: "/v1/orders2", file: "old.json", schema: schemaDoc(t, `{
			"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"n": {"type": "integer"}}, "properties": {"n": {"$ref": "#/definitions/n"}}}`)},
		routeDoc{operation: "orders.cancel", path: "/v1/orders/{id}/cancel", params: []string{"id"}},
		routeDoc{operation: "orders.external", path: "/v1/x", file: "ext.json", schema: schemaDoc(t, `{"properties": {"a": {"$ref": "common.json#/$defs/a"}}}`)},
	)
	bodyRef := func(path string) any {
		return f.Paths[path]["post"].RequestBody.Content["application/json"].Schema["$ref"]
	}

	create := f.Components.Schemas["GatewayOrdersCreateRequest"]
	if bodyRef("/v1/orders") != "#/components/schemas/GatewayOrdersCreateRequest" || create == nil {
		t.Fatalf("orders.create: body %v, components %v", bodyRef("/v1/orders"), keys(f.Components.Schemas))
	}
	if _, has := create["$id"]; has {
		t.Fatalf("$id kept: %v", create)
	}
	if _, has := create["$schema"]; has {
		t.Fatalf("the 2020-12 $schema kept: %v", create)
	}
	if _, has := create["title"]; has || create["description"] != "An order\n\nWhat the shop sells." {
		t.Fatalf("title %v, description %q: want the title in the description", create["title"], create["description"])
	}
	want := map[string]any{
		"items": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/GatewayOrdersCreateRequest/$defs/item"}},
		"self":  map[string]any{"$ref": "#/components/schemas/GatewayOrdersCreateRequest"},
	}
	if !reflect.DeepEqual(create["properties"], want) {
		t.Fatalf("properties %v, want %v", create["properties"], want)
	}
	if c := create["$defs"].(map[string]any)["item"].(map[string]any)["const"]; !reflect.DeepEqual(c, map[string]any{"$ref": "data, not a reference"}) {
		t.Fatalf("const rewritten: %v", c)
	}

	// "orders-create" has the same words as "orders.create": a name of its own.
	old := f.Components.Schemas["GatewayOrdersCreateRequest2"]
	if bodyRef("/v1/orders2") != "#/components/schemas/GatewayOrdersCreateRequest2" || old["$schema"] != "http://json-schema.org/draft-07/schema#" {
		t.Fatalf("orders-create: body %v, schema %v", bodyRef("/v1/orders2"), old)
	}
	if n := old["properties"].(map[string]any)["n"]; !reflect.DeepEqual(n, map[string]any{"$ref": "#/components/schemas/GatewayOrdersCreateRequest2/definitions/n"}) {
		t.Fatalf("draft-07 reference %v", n)
	}
	ids := map[string]string{}
	for path, item := range f.Paths {
		id := item["post"].OperationID
		if other, dup := ids[id]; dup {
			t.Fatalf("operationId %s is both %s's and %s's", id, path, other)
		}
		ids[id] = path
	}
	if ids["gateway_orders_create"] != "/v1/orders" || ids["gateway_orders_create2"] != "/v1/orders2" {
		t.Fatalf("operationIds %v", ids)
	}

	// No schema, or one that refers outside itself: any JSON value, said so.
	if s := f.Components.Schemas["GatewayOrdersCancelRequest"]; len(s) != 1 || s["description"] == nil {
		t.Fatalf("no schema: %v", s)
	}
	if s := f.Components.Schemas["GatewayOrdersExternalRequest"]; len(s) != 1 || s["description"] == nil {
		t.Fatalf("external reference: %v", s)
	}

	// What the routes record is whatever the upstreams answer.
	if want := []map[string]any{{"$ref": "#/components/schemas/JSONValue"}}; !reflect.DeepEqual(f.RecordedBodies, want) {
		t.Fatalf("recorded bodies %v, want %v", f.RecordedBodies, want)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
