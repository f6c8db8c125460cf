package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// routeDoc is what the OpenAPI document says of a route.
type routeDoc struct {
	operation string
	path      string
	params    []string
	schema    any    // the route's JSON Schema document, or nil
	file      string // where schema comes from, as the routes file says
}

// defaultDialect is the JSON Schema dialect of an OpenAPI 3.1 document's
// schemas; a route's schema that names another keeps its $schema.
const defaultDialect = "https://json-schema.org/draft/2020-12/schema"

// openAPIFragment describes the routes for the served OpenAPI document:
// the core's contract (202, replay, 409, the 4xx before the claim) and,
// as the request body, each route's JSON Schema, as a named component
// (Gateway<Operation>Request) so that generated clients get a named type.
// What the upstream answers is whatever it answers, replayed byte for
// byte; so the bodies the routes record are any JSON value.
func openAPIFragment(routes []routeDoc) ([]byte, error) {
	paths := map[string]any{}
	schemas := map[string]any{}
	opIDs := map[string]bool{}
	for _, r := range routes {
		params := []any{
			map[string]any{"$ref": "#/components/parameters/IdempotencyKey"},
			map[string]any{"$ref": "#/components/parameters/Prefer"},
		}
		for _, p := range r.params {
			params = append(params, map[string]any{"name": p, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		words := identifierWords(r.operation)
		name := unique(schemas, "Gateway"+strings.Join(capitalized(words), "")+"Request")
		schemas[name] = requestSchema(r.schema, r.file, "#/components/schemas/"+name)
		opID := unique(opIDs, "gateway_"+strings.Join(words, "_"))
		opIDs[opID] = true
		problem := func(desc string) map[string]any {
			return map[string]any{"description": desc, "content": map[string]any{
				"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
		}
		paths[r.path] = map[string]any{"post": map[string]any{
			"operationId": opID,
			"tags":        []string{"gateway"},
			"summary":     "Gateway route (operation " + r.operation + ")",
			"description": "Claims the Idempotency-Key and answers 202; the projector calls the upstream with Idempotency-Key: <operation id> and records its answer, which every retry with the same key and an equivalent body gets byte for byte.",
			"parameters":  params,
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{
				"schema": map[string]any{"$ref": "#/components/schemas/" + name}}}},
			"responses": map[string]any{
				"202":     map[string]any{"$ref": "#/components/responses/Accepted"},
				"400":     map[string]any{"$ref": "#/components/responses/BadRequest"},
				"401":     map[string]any{"$ref": "#/components/responses/Unauthorized"},
				"409":     map[string]any{"$ref": "#/components/responses/KeyReused"},
				"413":     map[string]any{"$ref": "#/components/responses/TooLarge"},
				"415":     map[string]any{"$ref": "#/components/responses/UnsupportedMediaType"},
				"422":     problem("The body does not match the route's schema (type .../validation-failed, detail naming the failing location); consumes no key."),
				"502":     problem("The upstream failed, in an observed way, on every attempt for the whole call budget and the command was dead-lettered (type .../upstream-failed, recorded)."),
				"503":     map[string]any{"$ref": "#/components/responses/Unavailable"},
				"default": map[string]any{"description": "The upstream's recorded answer (status, Content-Type, Location and body), replayed byte for byte. A final answer whose body was over 1 MiB keeps its status and Location, with a problem of type .../upstream-answer-not-kept as its body."},
			},
		}}
	}
	return json.Marshal(map[string]any{
		"paths":                      paths,
		"components":                 map[string]any{"schemas": schemas},
		"tags":                       []any{map[string]any{"name": "gateway", "description": "Routes of the gateway's routes file, each in front of an upstream service."}},
		"x-idemgate-recorded-bodies": []any{map[string]any{"$ref": "#/components/schemas/JSONValue"}},
	})
}

// requestSchema is a route's JSON Schema as a component at base: its
// $id dropped (the document is its base now), its title made part of
// its description, and its references within itself ("#/$defs/item")
// made to point into the component. A schema that refers to another file
// or to an anchor, which the document cannot hold, is described as any
// JSON value naming its file. No schema: any JSON value.
func requestSchema(doc any, file, base string) map[string]any {
	m, ok := doc.(map[string]any)
	if !ok {
		return map[string]any{"description": "Any JSON value: the route has no schema."}
	}
	out := map[string]any{}
	for k, v := range m {
		switch {
		case k == "$id", k == "title":
		case k == "$schema" && v == defaultDialect:
		default:
			out[k] = v
		}
	}
	// Generators name a type after its title before its component's name:
	// the title joins the description so that the type is the component.
	if title, _ := m["title"].(string); title != "" {
		if desc, _ := m["description"].(string); desc != "" {
			title += "\n\n" + desc
		}
		out["description"] = title
	}
	rebased, ok := rebase(out, base)
	if !ok {
		return map[string]any{"description": "Any JSON value as far as this document says: the route's schema, " + file +
			", refers outside itself; the gateway checks the body against it (422)."}
	}
	return rebased.(map[string]any)
}

// instanceData are the keywords whose values are JSON data, not schemas.
var instanceData = map[string]bool{"const": true, "enum": true, "default": true, "examples": true, "example": true}

// rebase rewrites the document-local references ("#", "#/...") of a
// schema to start at base; it reports false for any other reference.
func rebase(v any, base string) (any, bool) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if instanceData[k] {
				out[k] = e
				continue
			}
			if ref, isStr := e.(string); isStr && (k == "$ref" || k == "$dynamicRef") {
				if ref != "#" && !strings.HasPrefix(ref, "#/") {
					return nil, false
				}
				out[k] = base + strings.TrimPrefix(ref, "#")
				continue
			}
			r, ok := rebase(e, base)
			if !ok {
				return nil, false
			}
			out[k] = r
		}
		return out, true
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			r, ok := rebase(e, base)
			if !ok {
				return nil, false
			}
			out[i] = r
		}
		return out, true
	}
	return v, true
}

// identifierWords splits an operation name into its ASCII letter and
// digit runs: "orders.create" is orders, create.
func identifierWords(s string) []string {
	words := strings.FieldsFunc(s, func(r rune) bool {
		return r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r))
	})
	if len(words) == 0 {
		return []string{"route"}
	}
	return words
}

func capitalized(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return out
}

// unique returns name if taken lacks it, else name with the first
// number from 2 up that taken lacks: two operations whose names differ
// only in punctuation ("a.b", "a-b") still get distinct identifiers.
func unique[V any](taken map[string]V, name string) string {
	c := name
	for n := 2; ; n++ {
		if _, dup := taken[c]; !dup {
			return c
		}
		c = fmt.Sprintf("%s%d", name, n)
	}
}
